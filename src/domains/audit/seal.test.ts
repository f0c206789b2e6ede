import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, testConfig, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { migrate } from '../../db/migrate.js';
import { systemContext } from '../../kernel/context.js';
import { afterMigrations } from '../../main.js';
import { verifyChain } from './verify.js';

/** The part of migration 014 that lists the heads written before it. */
function listingSql(): string {
  const text = readFileSync(new URL('../../db/migrations/014_audit_checkpoints_and_grants.sql', import.meta.url), 'utf8');
  const start = text.indexOf('alter table audit_heads no force row level security;');
  const end = text.indexOf('end $$;', start) + 'end $$;'.length;
  if (start < 0 || end < start) throw new Error('migration 014 changed: update this test');
  return text.slice(start, end);
}

describe.each(ENGINES)('heads written before migration 014 on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  it('a fresh database lists nothing to seal', async () => {
    expect(await h.t.owner.query(`select to_regclass('palisade_admin.audit_heads_to_seal')::text as t`)).toEqual([{ t: null }]);
  });

  it('are sealed by the process that migrates (it holds the keys), except a head that moved since it was listed', async () => {
    const [acme, globex] = [h.orgId('acme'), h.orgId('globex')];
    // The database as migration 014 finds it: heads without a MAC.
    await h.t.owner.query(`update audit_heads set key_id = '', mac = ''`);
    await h.t.owner.script(listingSql());
    const listed = await h.t.owner.query<{ n: number }>('select count(*)::int as n from palisade_admin.audit_heads_to_seal');
    expect(listed[0]?.n).toBeGreaterThanOrEqual(2);
    // globex's head moves after the listing (as a blanked and set-back head would): it stays unsealed.
    const globexHead = (await h.t.owner.query<{ seq: number | string }>('select seq from audit_heads where org_id = $1', [globex]))[0];
    await h.t.owner.query('update audit_heads set seq = seq - 1 where org_id = $1', [globex]);

    await migrate(h.t.owner, { runtimeRole: h.t.db.runtimeRole, runtimePassword: null, login: engine === 'postgres', afterMigrations: afterMigrations(testConfig()) });

    const keys = h.built.services.chainKeys;
    expect((await verifyChain(h.t.owner.query, keys, acme, 'acme')).ok).toBe(true);
    await h.t.db.withTenant({ orgId: acme }, (tx) => h.built.services.audit.append(tx, acme, systemContext('test'), { action: 'asset.viewed' }));
    expect((await verifyChain(h.t.owner.query, keys, acme, 'acme')).ok).toBe(true);
    expect((await verifyChain(h.t.owner.query, keys, globex, 'globex')).problems).toContain('the chain head carries no MAC');
    expect(await h.t.owner.query(`select to_regclass('palisade_admin.audit_heads_to_seal')::text as t`)).toEqual([{ t: null }]);
    await h.t.owner.query('update audit_heads set seq = $2 where org_id = $1', [globex, globexHead?.seq]);
  });
});
