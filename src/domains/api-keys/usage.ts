import { sql } from 'kysely';
import { exec, type Database } from '../../db/database.js';

/**
 * last_used_at without a write per request: a use is noted in memory when the stored value is
 * older than `granularitySeconds`, and pending notes are written in one statement per org every
 * `flushSeconds` (and on shutdown). A crash loses at most one interval of "last used", never
 * anything that decides access.
 */
export interface KeyUsage {
  note(orgId: string, keyId: string, storedLastUsed: Date | null, now: Date): void;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function createKeyUsage(deps: {
  db: Database;
  flushSeconds?: number;
  granularitySeconds?: number;
  onError: (err: unknown) => void;
}): KeyUsage {
  const granularityMs = (deps.granularitySeconds ?? 60) * 1000;
  let pending = new Map<string, { orgId: string; at: Date }>();
  /** When this process last queued each key's use (ms): bounded, forgetting only costs a write. */
  const lastNoted = new Map<string, number>();
  let flushing: Promise<void> = Promise.resolve();

  async function write(batch: Map<string, { orgId: string; at: Date }>): Promise<void> {
    const byOrg = new Map<string, { ids: string[]; ats: string[] }>();
    for (const [keyId, { orgId, at }] of batch) {
      const entry = byOrg.get(orgId) ?? { ids: [], ats: [] };
      entry.ids.push(keyId);
      entry.ats.push(at.toISOString());
      byOrg.set(orgId, entry);
    }
    for (const [orgId, { ids, ats }] of byOrg) {
      await deps.db.withTenant({ orgId, projectIds: null }, (tx) =>
        exec(
          tx,
          sql`update api_keys k set last_used_at = v.at
              from unnest(${ids}::uuid[], ${ats}::timestamptz[]) as v(id, at)
              where k.org_id = ${orgId} and k.id = v.id and (k.last_used_at is null or k.last_used_at < v.at)`,
        ),
      );
    }
  }

  function flush(): Promise<void> {
    // Serialised: a slow flush is not overtaken by the next one writing an older batch.
    flushing = flushing.then(async () => {
      if (pending.size === 0) return;
      const batch = pending;
      pending = new Map();
      await write(batch).catch(deps.onError);
    });
    return flushing;
  }

  const timer = setInterval(() => void flush(), (deps.flushSeconds ?? 30) * 1000);
  timer.unref();

  return {
    note(orgId, keyId, storedLastUsed, now) {
      // The stored value may be older than what this process already wrote: a key's row can come
      // from the authentication cache, which last_used_at alone does not invalidate (migration 040).
      const noted = lastNoted.get(keyId);
      const last = noted !== undefined && (!storedLastUsed || noted > storedLastUsed.getTime()) ? noted : storedLastUsed?.getTime();
      if (last !== undefined && now.getTime() - last < granularityMs) return;
      if (lastNoted.size >= 100_000) lastNoted.clear();
      lastNoted.set(keyId, now.getTime());
      const seen = pending.get(keyId);
      if (!seen || seen.at < now) pending.set(keyId, { orgId, at: now });
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush();
    },
  };
}
