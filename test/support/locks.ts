/** Orchestration of PostgreSQL lock races: wait until requests queue behind a lock a test holds. */
import type pg from 'pg';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Waits (about 3 s at most) until `n` backends of the current database wait on a lock, read
 * through `monitor`, a connection of its own; fails with what every backend is doing.
 */
export async function lockWaiters(monitor: pg.Client, n: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const r = await monitor.query<{ n: number }>("select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'");
    if ((r.rows[0]?.n ?? 0) >= n) return;
    await sleep(10);
  }
  const seen = await monitor.query("select state, wait_event_type, wait_event, left(query, 80) as q from pg_stat_activity where datname = current_database()");
  throw new Error(`not waiting ${n}: ${JSON.stringify(seen.rows)}`);
}
