import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GLOBAL_TABLES_WITH_ORG_ID } from '../../src/db/catalog.js';
import { rows, type Tx } from '../../src/db/database.js';
import { newId } from '../../src/crypto/index.js';
import { InvariantError } from '../../src/kernel/errors.js';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/db.js';
import { attempt, auditWriter, ownerCounts, seedTenant, TENANT_TABLES, type SeededTenant } from '../support/tenants.js';

/** Row counts of every given table, as seen from inside `tx`. */
async function countsIn(tx: Tx, tables: readonly string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const table of tables) {
    const r = await rows<{ n: number }>(tx, sql`select count(*)::int as n from ${sql.table(table)}`);
    out[table] = r[0]?.n ?? -1;
  }
  return out;
}

const zeros = (tables: readonly string[]): Record<string, number> => Object.fromEntries(tables.map((x) => [x, 0]));

describe.each(ENGINES)('missing or empty tenant context on %s', (engine) => {
  let t: TestDatabase;
  let a: SeededTenant;
  /** Every public table with an org_id column, read from the live catalog. */
  let catalogTenantTables: string[];

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    const audit = auditWriter(t.db);
    a = await seedTenant(t.db, audit, 'alpha');
    await seedTenant(t.db, audit, 'bravo');
    const r = await t.owner.query<{ relname: string }>(
      `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
       join pg_attribute att on att.attrelid = c.oid and att.attname = 'org_id' and not att.attisdropped
       where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1`,
    );
    // Global by design (documented in db/catalog.ts, checked there to hold only an id and a time).
    catalogTenantTables = r.map((x) => x.relname).filter((name) => !(name in GLOBAL_TABLES_WITH_ORG_ID));
  });
  afterAll(async () => t?.drop());

  it('knows every tenant table of the catalog, and each one holds rows', async () => {
    expect(catalogTenantTables).toEqual([...TENANT_TABLES].sort());
    for (const table of TENANT_TABLES) expect((await ownerCounts(t.owner, table)).size, table).toBe(2);
  });

  it('withSystem (no org bound) sees no tenant row in any tenant table', async () => {
    const seen = await t.db.withSystem('isolation test', (tx) => countsIn(tx, catalogTenantTables));
    expect(seen).toEqual(zeros(catalogTenantTables));
  });

  it('withSystem still reaches the global tables it exists for', async () => {
    const users = await t.db.withSystem('isolation test', (tx) => rows<{ n: number }>(tx, sql`select count(*)::int as n from users`));
    expect(users[0]?.n).toBe(4);
  });

  it("a transaction whose setting was emptied with set_config('palisade.org_id', '', true) sees nothing", async () => {
    const seen = await t.db.withTenant({ orgId: a.orgId, projectIds: null }, async (tx) => {
      const bound = await countsIn(tx, ['projects']);
      await sql`select set_config('palisade.org_id', '', true)`.execute(tx);
      return { bound, emptied: await countsIn(tx, catalogTenantTables) };
    });
    expect(seen.bound).toEqual({ projects: 2 });
    expect(seen.emptied).toEqual(zeros(catalogTenantTables));
  });

  it('also with the project scope and user emptied, or after RESET of the settings', async () => {
    const seen = await t.db.withTenant({ orgId: a.orgId, userId: a.ownerId, projectIds: null }, async (tx) => {
      await sql`select set_config('palisade.org_id', '', true), set_config('palisade.user_id', '', true),
                set_config('palisade.project_ids', '', true)`.execute(tx);
      const emptied = await countsIn(tx, catalogTenantTables);
      await sql`reset palisade.org_id`.execute(tx);
      await sql`reset palisade.user_id`.execute(tx);
      await sql`reset palisade.project_ids`.execute(tx);
      const setting = await rows<{ v: string | null }>(tx, sql`select current_setting('palisade.org_id', true) as v`);
      return { emptied, reset: await countsIn(tx, catalogTenantTables), setting: setting[0]?.v };
    });
    expect(seen.emptied).toEqual(zeros(catalogTenantTables));
    expect(seen.reset).toEqual(zeros(catalogTenantTables));
    expect(seen.setting ?? '').toBe('');
  });

  it('a garbage tenant setting fails the query instead of matching anything', async () => {
    const r = await attempt(t.db, { orgId: a.orgId, projectIds: null }, async (tx) => {
      await sql`select set_config('palisade.org_id', 'not-a-uuid', true)`.execute(tx);
      return countsIn(tx, ['projects']);
    });
    expect(r.state).toBe('22P02');
  });

  it('a user-only binding sees that user\'s membership and org, and no other tenant data', async () => {
    const seen = await t.db.withTenant({ orgId: null, userId: a.memberId }, async (tx) => ({
      counts: await countsIn(tx, catalogTenantTables),
      org: await rows<{ slug: string }>(tx, sql`select slug from organizations`),
    }));
    // Their own custom role's definition too (migration 026: "my organizations" in one read).
    expect(seen.counts).toEqual({ ...zeros(catalogTenantTables), organizations: 1, memberships: 1, custom_roles: 1 });
    expect(seen.org).toEqual([{ slug: 'alpha' }]);
  });

  it('a user-only binding shows the role the user holds and their own project assignments, never another member\'s', async () => {
    // Another role in the same org, and the owner assigned to a project: neither is the member's.
    await t.owner.query(`insert into custom_roles (org_id, id, name, permissions) values ($1, gen_random_uuid(), 'not held', '{org:read}')`, [a.orgId]);
    await t.owner.query(`insert into project_access (org_id, project_id, user_id) values ($1, $2, $3)`, [a.orgId, a.projects[1], a.ownerId]);
    const seenBy = (userId: string) => t.db.withTenant({ orgId: null, userId, projectIds: null }, async (tx) => ({
      roles: await rows<{ id: string }>(tx, sql`select id from custom_roles`),
      access: await rows<{ user_id: string; project_id: string }>(tx, sql`select user_id, project_id from project_access`),
    }));
    expect(await seenBy(a.memberId)).toEqual({ roles: [{ id: a.customRoleId }], access: [{ user_id: a.memberId, project_id: a.projects[0] }] });
    expect(await seenBy(a.ownerId)).toEqual({ roles: [], access: [{ user_id: a.ownerId, project_id: a.projects[1] }] });
    // And nothing of the kind with no user bound.
    const none = await t.db.withTenant({ orgId: null, userId: newId(), projectIds: null }, (tx) => countsIn(tx, ['custom_roles', 'project_access']));
    expect(none).toEqual({ custom_roles: 0, project_access: 0 });
    await t.owner.query(`delete from project_access where user_id = $1`, [a.ownerId]);
    await t.owner.query(`delete from custom_roles where name = 'not held'`);
  });

  it('refuses to open a tenant transaction without a valid binding', async () => {
    await expect(async () => t.db.withTenant({ orgId: null }, async () => 1)).rejects.toThrow(InvariantError);
    await expect(async () => t.db.withTenant({ orgId: '' }, async () => 1)).rejects.toThrow(InvariantError);
    await expect(async () => t.db.withTenant({ orgId: 'alpha' }, async () => 1)).rejects.toThrow(InvariantError);
    await expect(async () => t.db.withTenant({ orgId: `${a.orgId}' or true --` }, async () => 1)).rejects.toThrow(InvariantError);
    await expect(async () => t.db.withTenant({ orgId: a.orgId, userId: 'x' }, async () => 1)).rejects.toThrow(InvariantError);
    await expect(async () => t.db.withSystem('', async () => 1)).rejects.toThrow(InvariantError);
  });
});
