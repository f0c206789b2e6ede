import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { client, type Client } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId } from '../../crypto/index.js';


interface RoleView {
  id: string;
  name: string;
  description: string;
  builtin: boolean;
  permissions: string[];
}

describe.each(ENGINES)('custom roles on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let admin: Client;
  const as = async (email: string) => client(h, await h.cookieFor(email));
  const url = (path = '') => `/api/orgs/${acme}/roles${path}`;
  const uniqueName = (tag: string) => `${tag}-${newId().slice(0, 6)}`;

  async function createRole(by: Client, name: string, permissions: string[]): Promise<RoleView> {
    const res = await by.call('POST', url(), { name, permissions });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<RoleView>();
  }
  async function newMember(role: string): Promise<{ id: string; email: string }> {
    const id = newId();
    const email = `roles-${id.slice(0, 8)}@example.test`;
    await h.insertUser({ id, email, name: 'Role holder' });
    await h.t.owner.query('insert into memberships (org_id, user_id, role) values ($1, $2, $3)', [acme, id, role]);
    return { id, email };
  }

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
  });
  afterAll(async () => h?.close());

  it('gives a role that streams the trail the right to read it: audit:stream brings audit:read, and a stored role without it does not stream', async () => {
    const owner = await as(h.user('acme', 'owner').email);
    const role = await createRole(owner, uniqueName('siem'), ['audit:stream']);
    expect(role.permissions).toEqual(['org:read', 'audit:read', 'audit:stream']);
    const edited = await owner.call('PATCH', url(`/${role.id}`), { permissions: ['audit:stream', 'members:read'] });
    expect(edited.json<RoleView>().permissions).toEqual(expect.arrayContaining(['audit:read', 'audit:stream']));
    // A role stored before the rule (or by hand) holds audit:stream without audit:read: not honoured.
    await h.t.owner.query(`update custom_roles set permissions = '{org:read,audit:stream}' where id = $1`, [role.id]);
    // A rename keeps the stored set: it does not widen what holders have behind their back.
    expect((await owner.call('PATCH', url(`/${role.id}`), { name: uniqueName('siem-renamed') })).json<RoleView>().permissions).toEqual(['org:read', 'audit:stream']);
    const holder = await newMember('member');
    await h.t.owner.query(`update memberships set role = 'custom', custom_role_id = $3 where org_id = $1 and user_id = $2`, [acme, holder.id, role.id]);
    const res = await (await as(holder.email)).call('GET', `/api/orgs/${acme}/audit/streams`);
    expect(res.statusCode).toBe(403);
  });

  it('create, list, update and delete a custom role', async () => {
    admin = await as(h.user('acme', 'admin').email);
    const name = uniqueName('auditor');
    const res = await admin.call('POST', url(), { name, description: 'Reads the trail', permissions: ['audit:read', 'org:read', 'audit:read'] });
    expect(res.statusCode).toBe(201);
    const role = res.json<RoleView>();
    expect(role).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), name, description: 'Reads the trail', builtin: false, permissions: ['org:read', 'audit:read'] });

    const list = (await admin.call('GET', url())).json<{ roles: RoleView[] }>().roles;
    expect(list.filter((r) => r.builtin).map((r) => r.id)).toEqual(['owner', 'admin', 'member', 'viewer', 'project_viewer']);
    expect(list.find((r) => r.id === role.id)).toEqual(role);

    const renamed = await admin.call('PATCH', url(`/${role.id}`), { name: `${name}-2`, description: 'changed' });
    expect(renamed.statusCode).toBe(200);
    expect(renamed.json()).toEqual({ ...role, name: `${name}-2`, description: 'changed' });
    // Every role carries org:read: a member can always see (and leave) their org.
    const perms = await admin.call('PATCH', url(`/${role.id}`), { permissions: ['projects:read'] });
    expect(perms.json<RoleView>().permissions).toEqual(['org:read', 'projects:read']);
    const stored = await h.t.owner.query<{ name: string; permissions: string[] }>('select name, permissions from custom_roles where id = $1', [role.id]);
    expect(stored).toEqual([{ name: `${name}-2`, permissions: ['org:read', 'projects:read'] }]);

    expect((await admin.call('DELETE', url(`/${role.id}`))).statusCode).toBe(204);
    expect((await admin.call('GET', url())).json<{ roles: RoleView[] }>().roles.map((r) => r.id)).not.toContain(role.id);
    expect((await admin.call('DELETE', url(`/${role.id}`))).statusCode).toBe(404);
    expect((await admin.call('PATCH', url(`/${role.id}`), { description: 'x' })).statusCode).toBe(404);

    const actions = await h.t.owner.query<{ action: string }>(
      'select action from audit_events where org_id = $1 and target_id = $2 order by seq', [acme, role.id]);
    expect(actions.map((a) => a.action)).toEqual(['role.created', 'role.updated', 'role.updated', 'role.deleted']);
  });

  it('names are unique per org: create or rename onto an existing name is 409', async () => {
    admin = await as(h.user('acme', 'admin').email);
    const a = await createRole(admin, uniqueName('a'), ['org:read']);
    const b = await createRole(admin, uniqueName('b'), ['org:read']);
    const dup = await admin.call('POST', url(), { name: a.name, permissions: ['projects:read'] });
    expect(dup.statusCode).toBe(409);
    expect(dup.json()).toMatchObject({ code: 'conflict' });
    const clash = await admin.call('PATCH', url(`/${b.id}`), { name: a.name });
    expect(clash.statusCode).toBe(409);
    expect((await h.t.owner.query<{ name: string }>('select name from custom_roles where id = $1', [b.id]))[0]?.name).toBe(b.name);
    // The same name in another org is fine.
    const globexOwner = await as(h.user('globex', 'owner').email);
    expect((await globexOwner.call('POST', `/api/orgs/${h.orgId('globex')}/roles`, { name: a.name, permissions: ['org:read'] })).statusCode).toBe(201);
  });

  it('a role in use cannot be deleted', async () => {
    admin = await as(h.user('acme', 'admin').email);
    const role = await createRole(admin, uniqueName('used'), ['org:read', 'projects:read']);
    const holder = await newMember('viewer');
    expect((await admin.call('PATCH', `/api/orgs/${acme}/members/${holder.id}`, { role: 'custom', customRoleId: role.id })).statusCode).toBe(204);
    const res = await admin.call('DELETE', url(`/${role.id}`));
    expect(res.statusCode).toBe(409);
    expect(res.json()).toMatchObject({ code: 'conflict' });
    expect((await admin.call('PATCH', `/api/orgs/${acme}/members/${holder.id}`, { role: 'viewer' })).statusCode).toBe(204);
    expect((await admin.call('DELETE', url(`/${role.id}`))).statusCode).toBe(204);
  });

  it('permission changes reach the holder on their next request', async () => {
    admin = await as(h.user('acme', 'admin').email);
    const role = await createRole(admin, uniqueName('reader'), ['org:read', 'projects:read']);
    const holder = await newMember('viewer');
    expect((await admin.call('PATCH', `/api/orgs/${acme}/members/${holder.id}`, { role: 'custom', customRoleId: role.id })).statusCode).toBe(204);
    const me = await as(holder.email);
    expect((await me.call('GET', `/api/orgs/${acme}/projects`)).statusCode).toBe(200);
    expect((await me.call('GET', `/api/orgs/${acme}/members`)).statusCode).toBe(403);

    expect((await admin.call('PATCH', url(`/${role.id}`), { permissions: ['org:read', 'members:read'] })).statusCode).toBe(200);
    const members = await me.call('GET', `/api/orgs/${acme}/members`);
    expect(members.statusCode).toBe(200);
    expect(members.json<{ members: { userId: string; role: string; customRoleId: string }[] }>().members.find((m) => m.userId === holder.id))
      .toMatchObject({ role: 'custom', customRoleId: role.id });
    const projects = await me.call('GET', `/api/orgs/${acme}/projects`);
    expect(projects.statusCode).toBe(403);
    expect(projects.json()).toMatchObject({ code: 'forbidden', detail: 'requires projects:read' });

    // The holder's actions are recorded under the custom role's name.
    expect((await me.call('POST', `/api/orgs/${acme}/projects`, { name: 'x' })).statusCode).toBe(403);
    const denied = await h.t.owner.query<{ actor_role: string }>(
      "select actor_role from audit_events where org_id = $1 and actor_id = $2 and action = 'authz.denied' order by seq desc limit 1", [acme, holder.id]);
    expect(denied[0]?.actor_role).toBe(`custom:${role.name}`);
  });

  it('nobody creates or edits a role holding permissions they lack', async () => {
    admin = await as(h.user('acme', 'admin').email);
    const owner = await as(h.user('acme', 'owner').email);
    for (const permissions of [['billing:manage'], ['org:read', 'owners:manage'], ['org:delete']]) {
      const res = await admin.call('POST', url(), { name: uniqueName('esc'), permissions });
      expect(res.statusCode, permissions.join()).toBe(403);
      expect(res.json()).toMatchObject({ code: 'privilege_escalation' });
    }
    const mine = await createRole(admin, uniqueName('mine'), ['org:read']);
    const up = await admin.call('PATCH', url(`/${mine.id}`), { permissions: ['org:read', 'billing:manage'] });
    expect(up.statusCode).toBe(403);
    expect(up.json()).toMatchObject({ code: 'privilege_escalation' });

    // A role an owner made with owner-only rights is out of the admin's reach entirely.
    const ownerRole = await createRole(owner, uniqueName('billing'), ['org:read', 'billing:manage']);
    for (const [method, body] of [['PATCH', { description: 'mine now' }], ['PATCH', { permissions: ['org:read'] }], ['DELETE', undefined]] as const) {
      const res = await admin.call(method, url(`/${ownerRole.id}`), body);
      expect(res.statusCode).toBe(403);
      expect(res.json()).toMatchObject({ code: 'privilege_escalation' });
    }
    const stored = await h.t.owner.query<{ description: string; permissions: string[] }>('select description, permissions from custom_roles where id = $1', [ownerRole.id]);
    expect(stored).toEqual([{ description: '', permissions: ['org:read', 'billing:manage'] }]);

    const byViewer = await (await as(h.user('acme', 'viewer').email)).call('POST', url(), { name: uniqueName('v'), permissions: ['org:read'] });
    expect(byViewer.statusCode).toBe(403);
    expect(byViewer.json()).toMatchObject({ code: 'forbidden' });
  });

  it('invalid permission names and malformed bodies are 400 and write nothing', async () => {
    admin = await as(h.user('acme', 'admin').email);
    const name = uniqueName('bad');
    for (const body of [
      { name, permissions: ['projects:read', 'projects:everything'] },
      { name, permissions: ['*'] },
      { name, permissions: [] },
      { name, permissions: ['org:read'], extra: true },
      { name: '', permissions: ['org:read'] },
    ]) {
      const res = await admin.call('POST', url(), body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.json()).toMatchObject({ code: 'validation_failed' });
    }
    const role = await createRole(admin, uniqueName('ok'), ['org:read']);
    const bad = await admin.call('PATCH', url(`/${role.id}`), { permissions: ['org:read', 'root'] });
    expect(bad.statusCode).toBe(400);
    expect(await h.t.owner.query('select 1 from custom_roles where name = $1', [name])).toEqual([]);
    expect((await h.t.owner.query<{ permissions: string[] }>('select permissions from custom_roles where id = $1', [role.id]))[0]?.permissions).toEqual(['org:read']);
  });

  // review R4 finding 4
  // In full: a role held by a restricted member (or promised by a pending restricted invitation)
  // cannot gain org-wide permissions
  it('a role held or promised to a restricted member cannot gain org-wide permissions', async () => {
    admin = await as(h.user('acme', 'admin').email);
    const production = h.demo.orgs[0]?.projects[0]?.id as string;
    const role = await createRole(admin, uniqueName('scoped'), ['projects:read', 'assets:read']);
    const holder = await newMember('member');
    const assign = await admin.call('PATCH', `/api/orgs/${acme}/members/${holder.id}`, { role: 'custom', customRoleId: role.id, restricted: true });
    expect(assign.statusCode, assign.body).toBe(204);

    const widen = await admin.call('PATCH', url(`/${role.id}`), { permissions: ['projects:read', 'assets:read', 'audit:read'] });
    expect(widen.statusCode, widen.body).toBe(409);
    expect(widen.json<{ code: string; detail: string }>()).toMatchObject({ code: 'conflict', detail: expect.stringContaining('audit:read') });
    // Renaming, and changes within the project, are fine.
    expect((await admin.call('PATCH', url(`/${role.id}`), { description: 'still scoped' })).statusCode).toBe(200);
    expect((await admin.call('PATCH', url(`/${role.id}`), { permissions: ['projects:read', 'assets:read', 'assets:write'] })).statusCode).toBe(200);
    expect((await h.t.owner.query<{ permissions: string[] }>('select permissions from custom_roles where id = $1', [role.id]))[0]?.permissions)
      .toEqual(['org:read', 'projects:read', 'assets:read', 'assets:write']);

    // Once no restricted member holds it, it can.
    expect((await admin.call('PATCH', `/api/orgs/${acme}/members/${holder.id}`, { role: 'custom', customRoleId: role.id, restricted: false })).statusCode).toBe(204);
    expect((await admin.call('PATCH', url(`/${role.id}`), { permissions: ['projects:read', 'audit:read'] })).statusCode).toBe(200);

    // A pending restricted invitation holds it just the same.
    const invited = await createRole(admin, uniqueName('invited'), ['projects:read']);
    const inv = await admin.call('POST', `/api/orgs/${acme}/invitations`, {
      email: `roles-inv-${newId().slice(0, 8)}@example.test`, role: 'custom', customRoleId: invited.id, restricted: true, projectIds: [production],
    });
    expect(inv.statusCode, inv.body).toBe(201);
    const refused = await admin.call('PATCH', url(`/${invited.id}`), { permissions: ['projects:read', 'webhooks:manage'] });
    expect(refused.statusCode).toBe(409);
    expect(refused.json<{ detail: string }>().detail).toContain('webhooks:manage');
  });
});
