/**
 * The runtime pool closes an unused connection after PALISADE_DB_POOL_IDLE_SECONDS (config
 * poolIdleSeconds): checked on the server's side, in pg_stat_activity. A shorter time holds fewer
 * connections; a longer one spares the first requests after a quiet spell a cold backend each
 * (docs/operations.md).
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/db/open.js';
import { createTestDatabase, ENGINES, TEST_RUNTIME_ROLE, type TestDatabase } from '../support/db.js';

describe.runIf(ENGINES.includes('postgres'))('the runtime pool\u2019s idle connections (PostgreSQL)', () => {
  let t: TestDatabase;
  beforeAll(async () => { t = await createTestDatabase('postgres'); });
  afterAll(async () => t?.drop());

  async function backendOf(poolIdleSeconds?: number): Promise<{ alive: () => Promise<boolean>; close: () => Promise<void> }> {
    const opened = await openDatabase(
      { kind: 'postgres', ownerUrl: t.ownerUrl ?? '', runtimeUrl: t.runtimeUrl ?? '', runtimeRole: TEST_RUNTIME_ROLE, runtimePassword: null, poolSize: 1, poolIdleSeconds },
      { migrate: false },
    );
    const pid = await opened.db.withSystem('test', async (tx) => (await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(tx)).rows[0]?.pid);
    return {
      alive: async () => (await t.owner.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where pid = $1', [pid]))[0]?.n === 1,
      close: async () => { await opened.db.close(); await opened.owner.close(); },
    };
  }

  it('closes an unused connection after the configured time, and keeps it before', async () => {
    const short = await backendOf(1);
    const standard = await backendOf();
    try {
      expect(await short.alive()).toBe(true);
      await new Promise((r) => setTimeout(r, 1_800));
      expect(await short.alive()).toBe(false);
      expect(await standard.alive()).toBe(true);
    } finally {
      await short.close();
      await standard.close();
    }
  });
});
