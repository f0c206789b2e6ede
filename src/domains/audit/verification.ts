import { stat } from 'node:fs/promises';
import { CompiledQuery, sql } from 'kysely';
import { one, type Database, type TenantBinding, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { AppError } from '../../kernel/errors.js';
import type { ChainKeys } from './chain.js';
import { readCheckpoints, type CheckpointSet } from './checkpoints.js';
import { verifyChain, type Query } from './verify.js';
import type { ChainVerification } from './responses.js';

/** The answer names at most this many problems, then one line counting the rest (`palisade audit verify` lists them all). */
export const MAX_PROBLEMS = 20;

export interface AuditVerifier {
  /**
   * Walks the chain of `orgId` inside `binding` (the caller's tenant binding: RLS shows that org's
   * rows only, on the runtime role), with the server's chain keys and the org's latest checkpoint.
   */
  verify(binding: TenantBinding, orgId: string): Promise<ChainVerification>;
}

/** Walks of a chain that moved meanwhile before the answer is "retry": none holds a lock (review: a held head stalls the org's writes). */
const WALKS = 3;

/** The head's position as one string (null: no head). */
async function headOf(tx: Tx, orgId: string): Promise<string | null> {
  const h = await one<{ seq: number | string; hash: string }>(tx, sql`select seq, hash from audit_heads where org_id = ${orgId}`);
  return h ? `${String(h.seq)}:${h.hash}` : null;
}

/** verifyChain's `Query` over a transaction: the same statements `palisade audit verify` runs, here as the runtime role. */
export function txQuery(tx: Tx): Query {
  return async <R>(text: string, params: unknown[] = []) => (await tx.executeQuery<R>(CompiledQuery.raw(text, params))).rows as R[];
}

/**
 * One org's chain verified on request (GET /api/orgs/:orgId/audit/verification): the walk of
 * `palisade audit verify --org`, confined to the caller's tenant binding. The checkpoint file is
 * re-read only when it changed (size or modification time): it grows for as long as a server runs.
 */
export function createAuditVerifier(deps: { db: Database; keys: ChainKeys; clock: Clock; checkpointFile: string }): AuditVerifier {
  let cached: { size: number; mtimeMs: number; set: CheckpointSet } | null = null;

  async function checkpoints(): Promise<CheckpointSet | null> {
    const s = await stat(deps.checkpointFile).catch(() => null);
    if (!s) return null;
    if (cached && cached.size === s.size && cached.mtimeMs === s.mtimeMs) return cached.set;
    const set = await readCheckpoints(deps.checkpointFile, deps.keys);
    cached = { size: s.size, mtimeMs: s.mtimeMs, set };
    return set;
  }

  async function walk(binding: TenantBinding, orgId: string) {
    const cp = (await checkpoints())?.latest.get(orgId) ?? null;
    return deps.db.withTenant(binding, async (tx) => {
      const query = txQuery(tx);
      // Each statement of the walk sees what is committed when it runs (read committed): an append
      // committed between the last batch and the head read would look like a truncated tail. The
      // head moves with every append, in the append's transaction, so a head unchanged across the
      // walk means the walk saw one state. A chain that moves under every walk gets "retry", not a
      // lock: holding the head would make every audited write of the org wait for the walk.
      for (let attempt = 1; attempt <= WALKS; attempt++) {
        const before = await headOf(tx, orgId);
        const r = await verifyChain(query, deps.keys, orgId, null, cp);
        if ((await headOf(tx, orgId)) !== before) continue;
        // As the operator's walk: an org whose events and head are gone has no chain at all.
        if (r.events === 0 && !cp && before === null) r.problems.push('the organization has no audit chain: its events and head were deleted');
        return r;
      }
      throw new AppError('unavailable', 'the audit trail changed during each walk: retry in a moment (`palisade audit verify` checks a quiet chain)');
    });
  }

  // One walk per org at a time: callers of the same org while one runs share its answer (they all
  // hold audit:read there), so a few members cannot stack walks of one long chain.
  const inFlight = new Map<string, ReturnType<typeof walk>>();

  return {
    async verify(binding, orgId) {
      let running = inFlight.get(orgId);
      if (!running) {
        running = walk(binding, orgId).finally(() => inFlight.delete(orgId));
        inFlight.set(orgId, running);
      }
      const report = await running;
      const { problems } = report;
      const shown = problems.length > MAX_PROBLEMS
        ? [...problems.slice(0, MAX_PROBLEMS), `and ${problems.length - MAX_PROBLEMS} more (palisade audit verify lists every one)`]
        : problems;
      return { ok: problems.length === 0, events: report.events, problems: shown, checkedAt: deps.clock.now().toISOString() };
    },
  };
}
