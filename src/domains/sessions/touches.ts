import { sql } from 'kysely';
import { rows, type Database } from '../../db/database.js';

/**
 * Session touches (last_seen_at, longest_idle_seconds) written behind the request, by group
 * commit: the touches noted while one write is in flight go out together in the next, one
 * transaction and one commit for all of them, a few milliseconds after their requests.
 *
 * Why: sessions created together fall due together (a minute later, on every instance); written
 * by each request in its own transaction, the touches queued one commit after another (they were
 * announced then, and PostgreSQL serialises the commits of notifying transactions; since
 * migration 042 a touch announces nothing), and a session's cached row kept saying "due" until
 * its touch committed, so each of its requests meanwhile sent the same UPDATE and waited on the
 * same row lock. That was the second-long p99.9 of the full bench (docs/performance.md).
 * Cached rows keep their old idle clock across a touch: verification reads the row again once
 * that clock could decide anything (sessions/service.ts). A request does not wait for its touch:
 * waiting, it would hold its pool connection while the touch needs one. What a touch decides
 * (idle expiry) moves by minutes; what a crash has not yet written, a failed write, and a row
 * skipped because another transaction holds it are lost: those sessions look idle up to a minute
 * longer (until their next request notes them again), never the other way.
 */
export interface Touch {
  at: Date;
  gapSeconds: number;
}

export interface SessionTouches {
  touch(sessionId: string, at: Date, gapSeconds: number): void;
  /**
   * The latest activity this process noted for a session and the longest gap it saw, until its
   * write has committed (and a moment longer): verification takes it over the row it read, so
   * that a request right after another does not see the row from before the touch (and judge the
   * session idle, or due again).
   */
  noted(sessionId: string): Touch | undefined;
  /** Resolves when every touch noted so far is written (or failed and was reported). */
  settled(): Promise<void>;
}

/** How long a written touch stays noted: longer than any read that began before its commit. */
const NOTED_AFTER_COMMIT_MS = 2000;
const MAX_NOTED = 100_000;

export function createSessionTouches(deps: { db: Database; onError: (err: unknown) => void }): SessionTouches {
  const noted = new Map<string, Touch>();
  let open: Map<string, Touch> | null = null;
  let writing: ReadonlyMap<string, Touch> | null = null;
  let idle: Promise<void> = Promise.resolve();
  let wake: (() => void) | null = null;

  async function write(batch: ReadonlyMap<string, Touch>): Promise<void> {
    const ids: string[] = [];
    const ats: string[] = [];
    const gaps: number[] = [];
    for (const [id, t] of batch) {
      ids.push(id);
      ats.push(t.at.toISOString());
      gaps.push(t.gapSeconds);
    }
    const written = await deps.db.withSystem('session touch', (tx) =>
      // SKIP LOCKED: the batch never waits for a row, so it can never be part of a deadlock with
      // the statements that lock several of a user's session rows in their own order (revoke
      // all, mark for rotation, SSO enforcement), nor hold them up. A row locked by one of those is
      // left out; its session is forgotten here and noted again by its next request.
      // greatest(): another instance's later touch may have committed first.
      rows<{ id: string }>(
        tx,
        sql`with v as (select * from unnest(${ids}::uuid[], ${ats}::timestamptz[], ${gaps}::int[]) as v(id, at, gap)),
                 locked as (select s.id from sessions s join v on v.id = s.id where s.revoked_at is null for update of s skip locked)
            update sessions s set last_seen_at = greatest(s.last_seen_at, v.at), longest_idle_seconds = greatest(s.longest_idle_seconds, v.gap)
            from v where s.id = v.id and s.id in (select id from locked) and s.revoked_at is null
            returning s.id`,
      ),
    );
    const done = new Set(written.map((r) => r.id));
    for (const [id, t] of batch) if (!done.has(id)) forget(id, t);
  }

  /** Unless noted again since (then its own write forgets it). */
  function forget(id: string, t: Touch): void {
    if (noted.get(id) === t) noted.delete(id);
  }

  function report(err: unknown): void {
    try {
      deps.onError(err);
    } catch {
      // A reporter that throws must not become an unhandled rejection of the write loop.
    }
  }

  function drain(): void {
    if (writing) return;
    if (!open) {
      wake?.();
      wake = null;
      return;
    }
    const batch = open;
    open = null;
    writing = batch;
    write(batch)
      .then(() => {
        // Wall-clock time: this covers a read racing the commit, whatever the service's clock says.
        const later = setTimeout(() => {
          for (const [id, t] of batch) forget(id, t);
        }, NOTED_AFTER_COMMIT_MS);
        later.unref();
      }, (err: unknown) => {
        // Not written: forgotten now, so the next request notes it again.
        for (const [id, t] of batch) forget(id, t);
        report(err);
      })
      .finally(() => {
        writing = null;
        drain();
      })
      .catch(report);
  }

  return {
    touch(sessionId, at, gapSeconds) {
      if (!open) {
        open = new Map();
        if (!writing) {
          idle = new Promise((resolve) => (wake = resolve));
          // The touches of this turn of the event loop join the batch before it goes out. Outside
          // the request that noted the first: the write belongs to no request's transaction.
          deps.db.outsideRequest(() => setImmediate(drain));
        }
      }
      // Bounded: forgetting costs only a fresher read (the row), never a longer session.
      if (noted.size >= MAX_NOTED) noted.clear();
      const seen = noted.get(sessionId);
      const t = { at: seen && seen.at > at ? seen.at : at, gapSeconds: Math.max(seen?.gapSeconds ?? 0, gapSeconds) };
      noted.set(sessionId, t);
      open.set(sessionId, t);
    },
    noted: (sessionId) => noted.get(sessionId),
    settled: () => idle,
  };
}
