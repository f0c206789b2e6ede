import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import { exec, rows, type TenantBinding, type Tx } from '../../src/db/database.js';
import { InvariantError } from '../../src/kernel/errors.js';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/db.js';
import { attempt, auditWriter, seedTenant, type SeededTenant } from '../support/tenants.js';

const RLS_VIOLATION = /new row violates row-level security policy/;

async function visible(tx: Tx): Promise<{ projects: string[]; assets: string[]; memberships: number }> {
  const p = await rows<{ id: string }>(tx, sql`select id::text from projects order by id`);
  const a = await rows<{ id: string }>(tx, sql`select id::text from assets order by id`);
  const m = await rows<{ n: number }>(tx, sql`select count(*)::int as n from memberships`);
  return { projects: p.map((x) => x.id), assets: a.map((x) => x.id), memberships: m[0]?.n ?? -1 };
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort();

describe.each(ENGINES)('project scope in RLS on %s', (engine) => {
  let t: TestDatabase;
  let a: SeededTenant;
  let b: SeededTenant;
  let p1: string;
  let p2: string;

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    const audit = auditWriter(t.db);
    a = await seedTenant(t.db, audit, 'alpha');
    b = await seedTenant(t.db, audit, 'bravo');
    [p1, p2] = a.projects;
    // No code edits an asset, so the runtime role holds no UPDATE on assets (migration 014). The
    // project-scope policy is the layer below that privilege: it is tested here as if a later
    // feature granted it.
    await t.owner.script(`grant update on assets to ${t.db.runtimeRole}`);
  });
  afterAll(async () => t?.drop());

  const scoped = (projectIds: readonly string[] | null | undefined): TenantBinding => ({ orgId: a.orgId, projectIds });
  const assetsOf = (p: string): string[] => a.assets[p] ?? [];
  const insertAsset = (project: string) => (tx: Tx) =>
    exec(tx, sql`insert into assets (org_id, project_id, id, name, kind) values (${a.orgId}, ${project}, ${newId()}, 'n', 'host')`);

  it('[p1] sees only p1 and its assets, but the rest of the org as usual', async () => {
    const seen = await t.db.withTenant(scoped([p1]), visible);
    expect(seen).toEqual({ projects: [p1], assets: sorted(assetsOf(p1)), memberships: 2 });
  });

  it('[p1] can add an asset to p1 but not to p2', async () => {
    expect((await attempt(t.db, scoped([p1]), insertAsset(p1))).value).toBe(1);
    const denied = await attempt(t.db, scoped([p1]), insertAsset(p2));
    expect(denied.state).toBe('42501');
    expect(denied.message).toMatch(RLS_VIOLATION);
  });

  it('[p1] cannot move an asset of p1 into p2', async () => {
    const moved = await attempt(t.db, scoped([p1]), (tx) =>
      exec(tx, sql`update assets set project_id = ${p2} where id = ${assetsOf(p1)[0] ?? ''}`));
    expect(moved.state).toBe('42501');
    expect(moved.message).toMatch(RLS_VIOLATION);
  });

  it('[p1] cannot create projects, even with a fresh id', async () => {
    const denied = await attempt(t.db, scoped([p1]), (tx) =>
      exec(tx, sql`insert into projects (org_id, id, name) values (${a.orgId}, ${newId()}, 'new')`));
    expect(denied.state).toBe('42501');
    expect(denied.message).toMatch(RLS_VIOLATION);
  });

  it('[p1] updates and deletes of p2 and its assets affect nothing', async () => {
    const r = await attempt(t.db, scoped([p1]), async (tx) => ({
      renamed: await exec(tx, sql`update projects set name = 'x' where id = ${p2}`),
      assetsRenamed: await exec(tx, sql`update assets set name = 'x' where project_id = ${p2}`),
      assetsDeleted: await exec(tx, sql`delete from assets where project_id = ${p2}`),
      deleted: await exec(tx, sql`delete from projects where id = ${p2}`),
      ownRenamed: await exec(tx, sql`update assets set name = 'x' where project_id = ${p1}`),
    }));
    expect(r.value).toEqual({ renamed: 0, assetsRenamed: 0, assetsDeleted: 0, deleted: 0, ownRenamed: 2 });
  });

  it('a project scope naming another org\'s project sees nothing', async () => {
    const seen = await t.db.withTenant(scoped([b.projects[0]]), visible);
    expect(seen).toEqual({ projects: [], assets: [], memberships: 2 });
  });

  it('projectIds omitted (undefined) sees no project and no asset: forgetting the scope fails closed', async () => {
    expect(await t.db.withTenant({ orgId: a.orgId }, visible)).toEqual({ projects: [], assets: [], memberships: 2 });
    expect(await t.db.withTenant(scoped(undefined), visible)).toEqual({ projects: [], assets: [], memberships: 2 });
    expect((await attempt(t.db, scoped(undefined), insertAsset(p1))).state).toBe('42501');
  });

  it('an empty scope [] sees no project', async () => {
    expect(await t.db.withTenant(scoped([]), visible)).toEqual({ projects: [], assets: [], memberships: 2 });
  });

  it('projectIds null sees every project and asset of the org and may create projects', async () => {
    const seen = await t.db.withTenant(scoped(null), visible);
    expect(seen).toEqual({ projects: sorted([p1, p2]), assets: sorted([...assetsOf(p1), ...assetsOf(p2)]), memberships: 2 });
    const created = await attempt(t.db, scoped(null), (tx) =>
      exec(tx, sql`insert into projects (org_id, id, name) values (${a.orgId}, ${newId()}, 'new')`));
    expect(created.value).toBe(1);
  });

  it('[p1, p2] sees both but still may not create projects', async () => {
    const seen = await t.db.withTenant(scoped([p1, p2]), visible);
    expect(seen.projects).toEqual(sorted([p1, p2]));
    const denied = await attempt(t.db, scoped([p1, p2]), (tx) =>
      exec(tx, sql`insert into projects (org_id, id, name) values (${a.orgId}, ${newId()}, 'new')`));
    expect(denied.state).toBe('42501');
  });

  it('a scope value cannot smuggle the wildcard or a list through one entry', async () => {
    await expect(async () => t.db.withTenant(scoped(['*']), visible)).rejects.toThrow(InvariantError);
    await expect(async () => t.db.withTenant(scoped([`${p1},${p2}`]), visible)).rejects.toThrow(InvariantError);
    await expect(async () => t.db.withTenant(scoped([`${p1}','*`]), visible)).rejects.toThrow(InvariantError);
  });
});
