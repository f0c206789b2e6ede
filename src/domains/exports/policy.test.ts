import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../../test/support/db.js';
import { EXCLUDED_COLUMNS, EXCLUDED_TABLES, planOf, planProblems, tenantTables } from './policy.js';

/**
 * What an export holds comes from the catalog, not from a list: every tenant table is exported
 * unless excluded with a reason, and a column named like a secret stops the plan until someone
 * excludes it (or says why it holds none).
 */
describe.each(ENGINES)('tenant export plan on %s', (engine) => {
  let t: TestDatabase;
  const tables = () => t.db.withTenant({ orgId: '00000000-0000-4000-8000-000000000001', projectIds: null }, (tx) => tenantTables(tx));

  beforeAll(async () => {
    t = await createTestDatabase(engine);
  });
  afterAll(async () => t?.drop());

  it('covers every tenant table of the schema: each exported or excluded with a reason, no secret column unclassified', async () => {
    const list = await tables();
    expect(planProblems(list)).toEqual([]);
    const exported = planOf(list).map((p) => p.name);
    for (const name of list.map((x) => x.name)) expect(exported.includes(name) || Boolean(EXCLUDED_TABLES[name]), name).toBe(true);
    for (const must of ['organizations', 'memberships', 'projects', 'assets', 'audit_events', 'api_keys', 'integration_credentials', 'webhook_deliveries']) expect(exported).toContain(must);
    for (const never of ['org_keys', 'org_export_links']) expect(exported).not.toContain(never);
    for (const p of planOf(list)) for (const c of Object.keys(EXCLUDED_COLUMNS[p.name] ?? {})) expect(p.columns).not.toContain(c);
  });

  it('exports a new tenant table by itself, and refuses to run when it has a column named like a secret', async () => {
    await t.owner.script(`create table export_probe (org_id uuid not null, id uuid not null, note text, primary key (org_id, id));
                          select palisade_admin.tenant_table('export_probe');`);
    try {
      expect(planOf(await tables()).map((p) => p.name)).toContain('export_probe');
      await t.owner.script('alter table export_probe add column refresh_token text');
      expect(planProblems(await tables())).toEqual([expect.stringContaining('export_probe.refresh_token looks like a secret')]);
      // And a policy entry naming a table that is gone is reported too, so none goes stale.
      expect(() => planOf([])).toThrow(/org_keys is not a tenant table \(stale entry\)/);
    } finally {
      await t.owner.script('drop table export_probe');
    }
  });
});
