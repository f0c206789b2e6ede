/**
 * Restricted members (restricted to assigned projects) who hold admin-level rights act only
 * within those projects and only on members restricted within them. Ids F1-F3, F7-F9: the first
 * attacker review (174568f).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { signedIn } from '../../../test/support/client.js';
import { newUser } from '../../../test/support/users.js';

describe('restricted actors (pglite)', () => {
  let h: TestApp;
  let acme: string;
  let production: string;
  let staging: string;
  const url = (p: string) => `/api/orgs/${acme}${p}`;
  beforeAll(async () => {
    h = await createTestApp('pglite');
    acme = h.orgId('acme');
    production = h.demo.orgs[0]!.projects[0]!.id;
    staging = h.demo.orgs[0]!.projects[1]!.id;
  });
  afterAll(async () => h?.close());

  async function restrictedAdmin() {
    const u = await newUser(h, acme, 'admin', true);
    await h.t.owner.query('insert into project_access (org_id, project_id, user_id) values ($1,$2,$3)', [acme, production, u.id]);
    return { ...u, c: await signedIn(h, u.email) };
  }

  // review F1
  it('a restricted admin may rename its own assigned project; creating one is a 403, never a 500', async () => {
    const ra = await restrictedAdmin();
    const rename = await ra.c.call('PATCH', url(`/projects/${production}`), { name: 'Prod renamed' });
    const create = await ra.c.call('POST', url('/projects'), { name: 'New one' });
    expect({ rename: rename.statusCode, create: create.statusCode }).toEqual({ rename: 200, create: 403 });
  });

  // review F2
  it('a restricted admin cannot widen an unrestricted member by editing the custom role they hold', async () => {
    const owner = await signedIn(h, h.user('acme', 'owner').email);
    const role = await owner.call('POST', url('/roles'), { name: `reader-${Date.now()}`, permissions: ['org:read', 'projects:read'] });
    expect(role.statusCode).toBe(201);
    const roleId = role.json<{ id: string }>().id;
    const accomplice = await newUser(h);
    await h.t.owner.query("insert into memberships (org_id, user_id, role, custom_role_id, restricted) values ($1,$2,'custom',$3,false)", [acme, accomplice.id, roleId]);
    const ra = await restrictedAdmin();
    // Direct route is refused (assertCanScope): a restricted admin cannot give unrestricted access...
    const direct = await ra.c.call('PATCH', url(`/members/${accomplice.id}`), { role: 'admin', restricted: false });
    expect(direct.statusCode).toBe(403);
    // ...but editing the role the unrestricted member holds is not checked for scope.
    const edit = await ra.c.call('PATCH', url(`/roles/${roleId}`), { permissions: ['org:read', 'projects:read', 'projects:delete', 'assets:write', 'members:remove'] });
    const acc = await signedIn(h, accomplice.email);
    const victimProject = (await owner.call('POST', url('/projects'), { name: 'Out of scope' })).json<{ id: string }>().id;
    const del = await acc.call('DELETE', url(`/projects/${victimProject}`)); // a project the restricted admin cannot even see
    expect({ edit: edit.statusCode, deleteStaging: del.statusCode }).toEqual({ edit: 403, deleteStaging: 403 });
  });

  // review F3
  it('a restricted admin cannot demote, sign out or remove an unrestricted admin', async () => {
    const victim = await newUser(h, acme, 'admin', false);
    const ra = await restrictedAdmin();
    const demote = await ra.c.call('PATCH', url(`/members/${victim.id}`), { role: 'viewer', restricted: true });
    const rows = await h.t.owner.query<{ role: string; restricted: boolean }>('select role, restricted from memberships where org_id=$1 and user_id=$2', [acme, victim.id]);
    const victim2 = await newUser(h, acme, 'admin', false);
    const remove = await ra.c.call('DELETE', url(`/members/${victim2.id}`));
    expect({ demote: demote.statusCode, after: rows[0], remove: remove.statusCode }).toEqual({ demote: 403, after: { role: 'admin', restricted: false }, remove: 403 });
  });

  // review F9
  it('a restricted member sees no project ids outside its scope in the members list', async () => {
    const other = await newUser(h, acme, 'member', true);
    await h.t.owner.query('insert into project_access (org_id, project_id, user_id) values ($1,$2,$3)', [acme, staging, other.id]);
    const rm = await signedIn(h, h.user('acme', 'restricted_member').email);
    const list = await rm.call('GET', url('/members'));
    expect(list.statusCode).toBe(200);
    expect(JSON.stringify(list.json())).not.toContain(staging);
  });

  // review F8
  it('every custom role carries org:read, so its holder can leave the org', async () => {
    const owner = await signedIn(h, h.user('acme', 'owner').email);
    const role = await owner.call('POST', url('/roles'), { name: `assets-only-${Date.now()}`, permissions: ['assets:read'] });
    const u = await newUser(h);
    await h.t.owner.query("insert into memberships (org_id, user_id, role, custom_role_id) values ($1,$2,'custom',$3)", [acme, u.id, role.json<{ id: string }>().id]);
    const c = await signedIn(h, u.email);
    const leave = await c.call('POST', url('/leave'));
    expect(leave.statusCode).toBe(204);
  });

  // review F7
  it('projects:assign alone cannot widen the reach of a restricted admin', async () => {
    const owner = await signedIn(h, h.user('acme', 'owner').email);
    const role = await owner.call('POST', url('/roles'), { name: `pm-${Date.now()}`, permissions: ['org:read', 'projects:read', 'projects:assign'] });
    const pm = await newUser(h);
    await h.t.owner.query("insert into memberships (org_id, user_id, role, custom_role_id) values ($1,$2,'custom',$3)", [acme, pm.id, role.json<{ id: string }>().id]);
    const ra = await restrictedAdmin();
    const pmc = await signedIn(h, pm.email);
    // The PM could not change this admin's role (needs to cover admin permissions) ...
    const change = await pmc.call('PATCH', url(`/members/${ra.id}`), { role: 'admin', restricted: true });
    expect(change.statusCode).toBe(403);
    // ... but can hand the restricted admin a new project, where the admin can delete everything.
    const assign = await pmc.call('PUT', url(`/projects/${staging}/members/${ra.id}`));
    expect(assign.statusCode).toBe(403);
  });
});
