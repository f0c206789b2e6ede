import { Writable } from 'node:stream';
import { buildApp, type BuiltApp } from '../../src/app.js';
import type { Database } from '../../src/db/database.js';
import { openDatabase } from '../../src/db/open.js';
import type { Clock } from '../../src/kernel/clock.js';
import { createLogger } from '../../src/logging.js';
import { testConfig, type TestApp } from './app.js';
import { TEST_RUNTIME_ROLE } from './db.js';

export interface SecondInstance {
  built: BuiltApp;
  /** Its own pool on PostgreSQL (with its own authentication cache and listener). */
  db: Database;
  close(): Promise<void>;
}

/**
 * A second server instance on the same database: its own app, limiter and, on PostgreSQL, its
 * own connection pool (PGlite has one connection, so there it shares the database object). Its
 * clock is the first one's unless given (an instance whose clock disagrees).
 */
export async function secondInstance(h: TestApp, opts: { config?: Record<string, string>; clock?: Clock } = {}): Promise<SecondInstance> {
  let db: Database = h.t.db;
  let closeDb = async (): Promise<void> => undefined;
  if (h.t.engine === 'postgres' && h.t.ownerUrl && h.t.runtimeUrl) {
    const opened = await openDatabase(
      { kind: 'postgres', ownerUrl: h.t.ownerUrl, runtimeUrl: h.t.runtimeUrl, runtimeRole: TEST_RUNTIME_ROLE, runtimePassword: null, poolSize: 8 },
      { migrate: false },
    );
    await opened.owner.close();
    db = opened.db;
    closeDb = () => opened.db.close();
  }
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const built = await buildApp({ config: testConfig(opts.config), db, clock: opts.clock ?? h.clock, logger: createLogger('info', sink) });
  return {
    built,
    db,
    async close() {
      await built.app.close();
      await closeDb();
    },
  };
}
