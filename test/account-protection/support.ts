/**
 * Helpers of the account-protection suites only: a second server instance on the same database,
 * percentiles of timings, random client addresses. The shared ones (users, calls, MFA flows,
 * audit evidence) are in test/support.
 */
import { Writable } from 'node:stream';
import { buildApp, type BuiltApp } from '../../src/app.js';
import type { Database } from '../../src/db/database.js';
import { openDatabase } from '../../src/db/open.js';
import { createLogger } from '../../src/logging.js';
import { testConfig, type TestApp } from '../support/app.js';
import { TEST_RUNTIME_ROLE } from '../support/db.js';

/**
 * A second server instance on the same database: its own app, limiter and, on PostgreSQL, its
 * own connection pool (PGlite has one connection, so there it shares the database object).
 */
export async function secondInstance(h: TestApp, config: Record<string, string> = {}): Promise<{ built: BuiltApp; close(): Promise<void> }> {
  let db: Database = h.t.db;
  let closeDb = async (): Promise<void> => undefined;
  if (h.t.engine === 'postgres' && h.t.ownerUrl && h.t.runtimeUrl) {
    const opened = await openDatabase(
      { kind: 'postgres', ownerUrl: h.t.ownerUrl, runtimeUrl: h.t.runtimeUrl, runtimeRole: TEST_RUNTIME_ROLE, runtimePassword: null, poolSize: 8 },
      { migrate: false },
    );
    db = opened.db;
    closeDb = async () => {
      await opened.db.close();
      await opened.owner.close();
    };
  }
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const built = await buildApp({ config: testConfig(config), db, clock: h.clock, logger: createLogger('info', sink) });
  return {
    built,
    async close() {
      await built.app.close();
      await closeDb();
    },
  };
}

export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

/** A random documentation-range address, so that limiter keys never collide across runs. */
export function randomIp(): string {
  const b = () => Math.floor(Math.random() * 250) + 1;
  return `198.18.${b()}.${b()}`;
}
