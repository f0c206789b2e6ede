import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, testConfig, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { migrate } from '../../db/migrate.js';
import { systemContext } from '../../kernel/context.js';
import { migrationSteps } from '../../main.js';
import { HEAD_MAC_MIGRATION } from './seal.js';
import { verifyChain } from './verify.js';

/** Chain heads written before migration 014, which gave them a MAC. */
describe.each(ENGINES)('upgrading to migration 014 on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  /** The database as migration 014 finds it: heads without the MAC columns, 014 not applied. */
  async function before014(): Promise<void> {
    await h.t.owner.script(`alter table audit_heads drop column key_id, drop column mac;
      delete from public.schema_migrations where version = '${HEAD_MAC_MIGRATION}'`);
  }
  const migrateWith = (keyedSteps: ReturnType<typeof migrationSteps>) =>
    migrate(h.t.owner, { runtimeRole: h.t.db.runtimeRole, runtimePassword: null, login: engine === 'postgres', keyedSteps });
  const applied = async () =>
    (await h.t.owner.query('select 1 from public.schema_migrations where version = $1', [HEAD_MAC_MIGRATION])).length === 1;

  // In full: is refused without the keys when chains exist (their heads could not be sealed),
  // leaving nothing applied
  it('is refused without the keys when chains exist, leaving nothing applied', async () => {
    await before014();
    await expect(migrateWith(undefined)).rejects.toThrow('migration 014 seals the existing audit chain heads with the keys');
    expect(await applied()).toBe(false);
    expect(await h.t.owner.query(`select 1 from information_schema.columns where table_name = 'audit_heads' and column_name = 'mac'`)).toEqual([]);
  });

  // In full: seals every existing head in the migration's own transaction when the migrating
  // process holds the keys
  it('seals every existing head in the migration transaction when it holds the keys', async () => {
    await migrateWith(migrationSteps(testConfig()));
    expect(await applied()).toBe(true);
    const keys = h.built.services.chainKeys;
    for (const slug of ['acme', 'globex']) {
      const orgId = h.orgId(slug);
      expect((await verifyChain(h.t.owner.query, keys, orgId, slug)).ok).toBe(true);
      await h.t.db.withTenant({ orgId }, (tx) => h.built.services.audit.append(tx, orgId, systemContext('test'), { action: 'asset.created' }));
      expect((await verifyChain(h.t.owner.query, keys, orgId, slug)).ok).toBe(true);
    }
    // FORCE is back on audit_heads: the catalog check holds.
    const forced = await h.t.owner.query<{ forced: boolean }>(`select relforcerowsecurity as forced from pg_class where relname = 'audit_heads'`);
    expect(forced).toEqual([{ forced: true }]);
  });
});
