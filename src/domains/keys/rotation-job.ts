import { sql } from 'kysely';
import type { Logger } from 'pino';
import { exec, rows, type Database } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { errorCodeOf } from '../../kernel/errors.js';
import { createPollLoop } from '../../kernel/poll-loop.js';
import type { DataKeyService } from './data-key-rotation.js';
import type { Shredder } from './shredding.js';

/** How long a claimed org is a worker's before another may take it. */
export const LEASE_SECONDS = 60;
/** A worker gives an org's rotation back after this long, so that other orgs get their turn (well inside the lease). */
const TURN_MS = 20_000;

export interface DataKeyJobDeps {
  db: Database;
  clock: Clock;
  logger: Logger;
  keys: DataKeyService;
  /** Destroys the keys of orgs whose deletion grace period has ended. */
  shredder?: Shredder;
  /** Values re-encrypted per transaction. */
  batchSize?: number;
  idleMs?: number;
  /** Tests: runs inside each batch's transaction after its writes, before the commit (throw to kill it there). */
  beforeCommit?: () => void;
}

/**
 * The data-key job: for each org whose turn has come (data_key_due), it shreds an org whose
 * deletion grace period has ended, or advances a running rotation batch by batch, destroys retired keys whose rollback window ended, and starts the
 * scheduled rotation. Several workers share it through leases, as the webhook worker does; all
 * state is in PostgreSQL, so a worker that dies mid-batch leaves that batch uncommitted and the
 * next lease holder does it again.
 */
export function createDataKeyJob(deps: DataKeyJobDeps) {
  const size = deps.batchSize ?? 500;
  const iso = (ms = 0) => new Date(deps.clock.now().getTime() + ms).toISOString();

  async function claim(limit: number): Promise<{ orgId: string; lease: string }[]> {
    const lease = iso(LEASE_SECONDS * 1000);
    const list = await deps.db.withSystem('data-key job: which orgs have key work due', (tx) =>
      rows<{ org_id: string }>(
        tx,
        sql`with due as materialized (
              select org_id from data_key_due where due_at <= ${iso()}::timestamptz order by due_at limit ${limit} for update skip locked)
            update data_key_due d set due_at = ${lease}::timestamptz from due where d.org_id = due.org_id returning d.org_id`,
      ),
    );
    return list.map((r) => ({ orgId: r.org_id, lease }));
  }

  /** One org's turn: batches while there is work and time, then the housekeeping. Returns the batches run. */
  async function turn(orgId: string): Promise<number> {
    const until = Date.now() + TURN_MS;
    let batches = 0;
    const shredded = await deps.shredder?.shredIfDue(orgId);
    if (shredded) {
      deps.logger.info({ orgId, keysDestroyed: shredded.keysDestroyed }, 'deleted organization shredded: its data keys are destroyed');
      return 1;
    }
    let state = await deps.keys.step(orgId, size, deps.beforeCommit);
    while (state === 'more') {
      batches++;
      if (loop.stopping || Date.now() > until) return batches;
      state = await deps.keys.step(orgId, size, deps.beforeCommit);
    }
    if (state === 'idle') {
      const { destroyed, kept } = await deps.keys.destroyDue(orgId);
      if (destroyed.length > 0) deps.logger.info({ orgId, keyIds: destroyed }, 'retired data keys destroyed');
      if (kept.length > 0) deps.logger.warn({ orgId, keyIds: kept }, 'retired data keys past their rollback window kept: a rotation runs or values are still under them');
      if (await deps.keys.rotateIfDue(orgId)) {
        deps.logger.info({ orgId }, 'scheduled data-key rotation started');
        batches++;
      }
    }
    return batches;
  }

  async function reschedule(orgId: string, lease: string): Promise<void> {
    let next = await deps.keys.nextDue(orgId);
    const purge = await deps.shredder?.purgeAt(orgId);
    if (purge && purge < next) next = purge;
    // Conditional on our lease: a rotation requested meanwhile set due_at to now, and stays due.
    await deps.db.withSystem('data-key job: next turn', (tx) =>
      exec(tx, sql`update data_key_due set due_at = ${next.toISOString()}::timestamptz where org_id = ${orgId} and due_at = ${lease}::timestamptz`),
    );
  }

  /** One org's turn (one at a time: a turn may last TURN_MS, and a second claimed org's lease would run out meanwhile). Returns 0 when nothing was due. */
  async function tick(): Promise<number> {
    let work = 0;
    for (const { orgId, lease } of await claim(1)) {
      work++;
      try {
        if (!loop.stopping) work += await turn(orgId);
        await reschedule(orgId, lease);
      } catch (err) {
        // The lease runs out and a later pass (this worker or another) resumes from the cursor.
        deps.logger.error({ orgId, code: errorCodeOf(err) }, 'data-key job turn failed');
      }
    }
    return work;
  }

  const loop = createPollLoop({ name: 'data-key job', logger: deps.logger, tick, idleMs: () => deps.idleMs ?? 5_000 });
  return {
    tick,
    /** Ticks until nothing is due now (tests, the CLI). */
    drain: loop.drain,
    start: loop.start,
    /** Stops after the batch in flight (its transaction commits or rolls back whole). */
    stop: loop.stop,
  };
}

export type DataKeyJob = ReturnType<typeof createDataKeyJob>;
