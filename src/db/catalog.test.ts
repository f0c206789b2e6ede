import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { catalogProblems } from './catalog.js';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../test/support/db.js';

describe.each(ENGINES)('catalog check on %s', (engine) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(engine);
  });
  afterAll(async () => t?.drop());

  it('finds no problem in the migrated schema', async () => {
    expect(await catalogProblems(t.db)).toEqual([]);
  });

  it('fails when a tenant table lacks forced RLS', async () => {
    await t.owner.script(`create table rogue (org_id uuid not null, v text); grant select on rogue to ${t.db.runtimeRole}`);
    await t.owner.script(`create table rogue2 (org_id uuid not null); alter table rogue2 enable row level security`);
    const problems = await catalogProblems(t.db);
    expect(problems).toContain('rogue: row-level security is not enabled');
    expect(problems).toContain('rogue: row-level security is not forced');
    expect(problems).toContain('rogue2: row-level security is not forced');
    expect(problems).toContain('rogue2: no tenant policy with USING and WITH CHECK on org_id');
    await t.owner.script(`drop table rogue; drop table rogue2`);
  });

  it('exempts a global-by-design table from RLS only while it holds its documented columns', async () => {
    await t.owner.script(`alter table webhook_due add column payload text`);
    expect(await catalogProblems(t.db)).toContain('webhook_due: global by design, but holds more than org_id, due_at: payload');
    await t.owner.script(`alter table webhook_due drop column payload`);
    expect(await catalogProblems(t.db)).toEqual([]);
  });

  // In full: fails on a SECURITY DEFINER function the runtime role can run, and on a view without
  // security_invoker
  it('fails on a SECURITY DEFINER function the runtime role can run, or a plain view', async () => {
    await t.owner.script(`create function leak() returns int language sql security definer as 'select 1'`);
    await t.owner.script(`create view v_users as select id from users`);
    const problems = await catalogProblems(t.db);
    expect(problems).toContain('SECURITY DEFINER function public.leak is executable by the runtime role');
    expect(problems).toContain('view v_users lacks security_invoker');
    await t.owner.script(`drop function leak(); drop view v_users`);
    expect(await catalogProblems(t.db)).toEqual([]);
  });

  // review R4 finding 3
  it('fails when the runtime role holds a privilege that undoes isolation or the append-only trail', async () => {
    const role = t.db.runtimeRole;
    await t.owner.script(`grant truncate on projects to ${role}; grant delete on audit_heads to ${role};
      grant update on audit_events to ${role}; grant create on schema public to ${role}`);
    await t.owner.script(`do $$ begin execute format('grant temporary on database %I to ${role}', current_database()); end $$`);
    expect(await catalogProblems(t.db)).toEqual([
      'runtime role holds CREATE in schema public, which no code path needs',
      'runtime role holds DELETE on audit_heads, which no code path needs',
      'runtime role holds TEMPORARY on the database, which no code path needs',
      'runtime role holds TRUNCATE on projects, which no code path needs',
      'runtime role holds UPDATE on audit_events, which no code path needs',
    ]);
    await t.owner.script(`revoke truncate on projects from ${role}; revoke delete on audit_heads from ${role};
      revoke update on audit_events from ${role}; revoke create on schema public from ${role}`);
    await t.owner.script(`do $$ begin execute format('revoke temporary on database %I from ${role}', current_database()); end $$`);
    expect(await catalogProblems(t.db)).toEqual([]);
  });

  it('fails when the runtime role gains BYPASSRLS or ownership', async () => {
    if (engine === 'pglite') {
      await t.owner.script(`alter role ${t.db.runtimeRole} bypassrls`);
      expect(await catalogProblems(t.db)).toContain(`runtime role ${t.db.runtimeRole} has BYPASSRLS`);
      await t.owner.script(`alter role ${t.db.runtimeRole} nobypassrls`);
    }
    await t.owner.script(`create table owned_by_app (id int); alter table owned_by_app owner to ${t.db.runtimeRole}`);
    expect(await catalogProblems(t.db)).toContain('runtime role owns (or inherits the owner of) owned_by_app');
    await t.owner.script(`drop table owned_by_app`);
  });
});
