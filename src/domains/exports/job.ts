import { sql } from 'kysely';
import type { Logger } from 'pino';
import { exec, one, rows, type Database } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { errorCodeOf } from '../../kernel/errors.js';
import { createPollLoop } from '../../kernel/poll-loop.js';
import type { ArchiveWriter } from './archive.js';

/** How long a claimed org is a worker's before another may take it. */
export const LEASE_SECONDS = 60;
/** A worker gives an org back after this long, so that other orgs get their turn (well inside the lease). */
const TURN_MS = 20_000;
/** Consecutive failed steps of one export before it is marked failed (and its partial archive deleted). */
export const MAX_ATTEMPTS = 5;

export interface ExportJobDeps {
  db: Database;
  clock: Clock;
  logger: Logger;
  archives: ArchiveWriter;
  idleMs?: number;
}

/**
 * The export job, shaped like the data-key job: claim an org whose export work is due
 * (export_due, global: read before any org is bound), write its oldest pending export batch by
 * batch for a turn, delete archives past their retention, and put the org back on the list for
 * when it next has work. All state is in PostgreSQL and the archive file: a worker killed
 * between batches leaves the last batch uncommitted, and the next lease holder redoes it.
 */
export function createExportJob(deps: ExportJobDeps) {
  const iso = (ms = 0) => new Date(deps.clock.now().getTime() + ms).toISOString();

  async function claim(): Promise<{ orgId: string; lease: string } | null> {
    const lease = iso(LEASE_SECONDS * 1000);
    const r = await deps.db.withSystem('export job: which org has export work due', (tx) =>
      one<{ org_id: string }>(
        tx,
        sql`with due as materialized (
              select org_id from export_due where due_at <= ${iso()}::timestamptz order by due_at limit 1 for update skip locked)
            update export_due d set due_at = ${lease}::timestamptz from due where d.org_id = due.org_id returning d.org_id`,
      ),
    );
    return r ? { orgId: r.org_id, lease } : null;
  }

  async function pending(orgId: string): Promise<string | null> {
    const r = await deps.db.withTenant({ orgId, projectIds: null }, (tx) =>
      one<{ id: string }>(tx, sql`select id from org_exports where org_id = ${orgId} and state in ('queued', 'running') order by created_at, id limit 1`),
    );
    return r?.id ?? null;
  }

  async function turn(orgId: string): Promise<number> {
    const until = Date.now() + TURN_MS;
    let steps = await deps.archives.expire(orgId);
    for (let id = await pending(orgId); id; id = await pending(orgId)) {
      try {
        while ((await deps.archives.step(orgId, id)) === 'more') {
          steps++;
          if (loop.stopping || Date.now() > until) return steps;
        }
        steps++;
      } catch (err) {
        deps.logger.error({ orgId, exportId: id, code: errorCodeOf(err) }, 'export step failed');
        await deps.archives.fail(orgId, id, errorCodeOf(err), MAX_ATTEMPTS);
        return steps + 1;
      }
      if (loop.stopping || Date.now() > until) return steps;
    }
    return steps;
  }

  /** Next turn: now while an export is pending, else when the next archive expires; off the list when neither. */
  async function reschedule(orgId: string, lease: string): Promise<void> {
    const next = await deps.db.withTenant({ orgId, projectIds: null }, (tx) =>
      rows<{ at: Date | null }>(
        tx,
        sql`select min(case when state in ('queued', 'running') then ${iso()}::timestamptz else expires_at end) as at
            from org_exports where org_id = ${orgId} and state in ('queued', 'running', 'done')`,
      ),
    );
    const at = next[0]?.at ?? null;
    // Conditional on our lease: an export requested meanwhile set due_at to now, and stays due.
    await deps.db.withSystem('export job: next turn', (tx) =>
      at
        ? exec(tx, sql`update export_due set due_at = ${at.toISOString()}::timestamptz where org_id = ${orgId} and due_at = ${lease}::timestamptz`)
        : exec(tx, sql`delete from export_due where org_id = ${orgId} and due_at = ${lease}::timestamptz`),
    );
  }

  async function tick(): Promise<number> {
    const claimed = await claim();
    if (!claimed) return 0;
    try {
      if (!loop.stopping) await turn(claimed.orgId);
      await reschedule(claimed.orgId, claimed.lease);
    } catch (err) {
      // The lease runs out and a later pass resumes from what the database says was committed.
      deps.logger.error({ orgId: claimed.orgId, code: errorCodeOf(err) }, 'export job turn failed');
    }
    return 1;
  }

  const loop = createPollLoop({ name: 'export job', logger: deps.logger, tick, idleMs: () => deps.idleMs ?? 5_000 });
  return { tick, drain: loop.drain, start: loop.start, wake: loop.wake, stop: loop.stop };
}

export type ExportJob = ReturnType<typeof createExportJob>;
