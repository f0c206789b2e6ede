import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { signUp } from '../../../test/support/accounts.js';
import { client, type Method } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId } from '../../crypto/index.js';
import type { TenantBinding } from '../../db/database.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { BUILTIN_ROLE_PERMISSIONS, PermissionSet } from '../../kernel/permissions.js';
import { auditSelect } from '../../../test/support/evidence.js';


const idsOf = (res: LightMyRequestResponse) => res.json<{ projects: { id: string }[] }>().projects.map((p) => p.id).sort();

describe.each(ENGINES)('restricted members on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let production: string;
  let staging: string;
  const as = async (email: string) => client(h, await h.cookieFor(email));
  const url = (path: string) => `/api/orgs/${acme}${path}`;
  const userIdOf = async (email: string) =>
    (await h.userId(email));

  /** What an org-scoped request of a restricted member looks like once the pipeline resolved it. */
  function restrictedCtx(userId: string, projectIds: string[]): RequestContext {
    const now = h.clock.now();
    return {
      requestId: 'test', ip: '127.0.0.1', userAgent: 'vitest', audited: [],
      actor: { type: 'user', userId, session: { id: newId(), createdAt: now, lastSeenAt: now } },
      org: { orgId: acme, role: 'member', roleLabel: 'member', permissions: PermissionSet.of(BUILTIN_ROLE_PERMISSIONS.member), projectIds },
    };
  }

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    const [p, s] = h.demo.orgs[0]?.projects ?? [];
    production = p?.id ?? '';
    staging = s?.id ?? '';
  });
  afterAll(async () => h?.close());

  it('layer 1: the project list shows only assigned projects', async () => {
    for (const role of ['restricted_member', 'project_viewer'] as const) {
      const res = await (await as(h.user('acme', role).email)).call('GET', url('/projects'));
      expect(res.statusCode).toBe(200);
      expect(res.json<{ projects: { id: string; name: string }[] }>().projects.map((p) => [p.id, p.name])).toEqual([[production, 'Production']]);
    }
    const viewer = await (await as(h.user('acme', 'viewer').email)).call('GET', url('/projects'));
    expect(idsOf(viewer)).toEqual([production, staging].sort());
  });

  it('layer 2: an unassigned project id is 404 on every project route, and the refusal is audited', async () => {
    const me = await as(h.user('acme', 'restricted_member').email);
    const userId = await userIdOf(h.user('acme', 'restricted_member').email);
    const refused: [Method, string, object | undefined][] = [
      ['GET', `/projects/${staging}`, undefined],
      ['GET', `/projects/${staging}/assets`, undefined],
      ['POST', `/projects/${staging}/assets`, { name: 'sneaky', kind: 'host' }],
      ['GET', `/projects/${staging}/members`, undefined],
    ];
    for (const [method, path, body] of refused) {
      const res = await me.call(method, url(path), body);
      expect(res.statusCode, `${method} ${path}`).toBe(404);
      expect(res.json()).toMatchObject({ code: 'not_found' });
    }
    const count = await h.t.owner.query<{ n: number }>("select count(*)::int as n from assets where name = 'sneaky'");
    expect(count[0]?.n).toBe(0);
    const denied = await auditSelect<{ details: { reason: string; route: string } }>(h, ['details'], `where org_id = $1 and actor_id = $2 and action = 'authz.denied' order by seq`, [acme, userId]);
    expect(denied.map((d) => d.details)).toEqual([
      { reason: 'project', route: 'GET /api/orgs/:orgId/projects/:projectId' },
      { reason: 'project', route: 'GET /api/orgs/:orgId/projects/:projectId/assets' },
      { reason: 'project', route: 'POST /api/orgs/:orgId/projects/:projectId/assets' },
      { reason: 'project', route: 'GET /api/orgs/:orgId/projects/:projectId/members' },
    ]);

    // The assigned project works as usual.
    expect((await me.call('GET', url(`/projects/${production}`))).statusCode).toBe(200);
    expect((await me.call('GET', url(`/projects/${production}/assets`))).json<{ assets: unknown[] }>().assets).toHaveLength(3);
    expect((await me.call('POST', url(`/projects/${production}/assets`), { name: 'allowed', kind: 'host' })).statusCode).toBe(201);
  });

  it('layer 3: RLS binds the project scope under the services', async () => {
    const userId = await userIdOf(h.user('acme', 'restricted_member').email);
    const ctx = restrictedCtx(userId, [production]);
    expect((await h.built.services.projects.list(ctx)).map((p) => p.id)).toEqual([production]);
    // Services that do not filter on the scope still cannot reach the other project.
    await expect(h.built.services.projects.get(ctx, staging)).rejects.toMatchObject({ code: 'not_found' });
    await expect(h.built.services.assets.list(ctx, staging, 10)).rejects.toEqual(new AppError('not_found'));
    await expect(h.built.services.assets.create(ctx, staging, { name: 'via-service', kind: 'host' })).rejects.toMatchObject({ code: 'not_found' });

    // Raw SQL with the scope bound and no filter at all.
    const visible = (b: TenantBinding) =>
      h.t.db.withTenant(b, async (tx) => ({
        projects: (await sql<{ id: string }>`select id from projects order by id`.execute(tx)).rows.map((r) => r.id),
        assetProjects: [...new Set((await sql<{ project_id: string }>`select project_id from assets`.execute(tx)).rows.map((r) => r.project_id))],
      }));
    expect(await visible({ orgId: acme, userId, projectIds: [production] })).toEqual({ projects: [production], assetProjects: [production] });
    expect(await visible({ orgId: acme, userId, projectIds: [] })).toEqual({ projects: [], assetProjects: [] });
    expect(await visible({ orgId: acme, userId })).toEqual({ projects: [], assetProjects: [] });
    expect((await visible({ orgId: acme, userId, projectIds: null })).projects).toEqual([production, staging].sort());

    // Writes outside the scope are refused by the policies' WITH CHECK.
    const insertAsset = h.t.db.withTenant({ orgId: acme, userId, projectIds: [production] }, (tx) =>
      sql`insert into assets (org_id, project_id, id, name, kind) values (${acme}, ${staging}, ${newId()}, 'rls', 'host')`.execute(tx));
    await expect(insertAsset).rejects.toThrow(/row-level security/);
    const insertProject = h.t.db.withTenant({ orgId: acme, userId, projectIds: [production] }, (tx) =>
      sql`insert into projects (org_id, id, name) values (${acme}, ${newId()}, 'rls')`.execute(tx));
    await expect(insertProject).rejects.toThrow(/row-level security/);
    const renamed = await h.t.db.withTenant({ orgId: acme, userId, projectIds: [production] }, (tx) =>
      sql`update projects set name = 'hijacked' where id = ${staging}`.execute(tx));
    expect(Number(renamed.numAffectedRows)).toBe(0);
    expect((await h.t.owner.query<{ name: string }>('select name from projects where id = $1', [staging]))[0]?.name).toBe('Staging');
  });

  it('assigning and unassigning a project takes effect on the next request', async () => {
    const id = newId();
    const email = `assign-${id.slice(0, 8)}@example.test`;
    await h.insertUser({ id, email, name: 'Assignee' });
    await h.t.owner.query("insert into memberships (org_id, user_id, role, restricted) values ($1, $2, 'member', true)", [acme, id]);
    const me = await as(email);
    const admin = await as(h.user('acme', 'admin').email);
    expect((await me.call('GET', url('/projects'))).json()).toEqual({ projects: [] });
    expect((await me.call('GET', url(`/projects/${staging}`))).statusCode).toBe(404);

    expect((await admin.call('PUT', url(`/projects/${staging}/members/${id}`))).statusCode).toBe(204);
    expect(idsOf(await me.call('GET', url('/projects')))).toEqual([staging]);
    expect((await me.call('GET', url(`/projects/${staging}`))).statusCode).toBe(200);
    expect((await me.call('POST', url(`/projects/${staging}/assets`), { name: 'assigned', kind: 'host' })).statusCode).toBe(201);
    const assigned = (await admin.call('GET', url(`/projects/${staging}/members`))).json<{ members: { userId: string }[] }>();
    expect(assigned.members.map((m) => m.userId)).toContain(id);
    // Idempotent.
    expect((await admin.call('PUT', url(`/projects/${staging}/members/${id}`))).statusCode).toBe(204);

    expect((await admin.call('DELETE', url(`/projects/${staging}/members/${id}`))).statusCode).toBe(204);
    expect((await me.call('GET', url('/projects'))).json()).toEqual({ projects: [] });
    expect((await me.call('GET', url(`/projects/${staging}/assets`))).statusCode).toBe(404);
    expect((await admin.call('DELETE', url(`/projects/${staging}/members/${id}`))).statusCode).toBe(404);

    const actions = await auditSelect<{ action: string; details: { userId: string } }>(h, ['action', 'details'], `where org_id = $1 and target_id = $2 and action like 'project.member_%' order by seq`, [acme, staging]);
    expect(actions.map((a) => [a.action, a.details.userId])).toEqual([
      ['project.member_assigned', id], ['project.member_assigned', id], ['project.member_unassigned', id],
    ]);
  });

  it('only restricted members are assigned, and only by holders of projects:assign', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const viewerId = await userIdOf(h.user('acme', 'viewer').email);
    const unrestricted = await admin.call('PUT', url(`/projects/${staging}/members/${viewerId}`));
    expect(unrestricted.statusCode).toBe(409);
    expect(unrestricted.json()).toMatchObject({ code: 'conflict' });
    const restrictedId = await userIdOf(h.user('acme', 'restricted_member').email);
    const byMember = await (await as(h.user('acme', 'member').email)).call('PUT', url(`/projects/${staging}/members/${restrictedId}`));
    expect(byMember.statusCode).toBe(403);
    // A restricted member cannot widen their own scope either.
    const self = await (await as(h.user('acme', 'restricted_member').email)).call('PUT', url(`/projects/${production}/members/${restrictedId}`));
    expect(self.statusCode).toBe(403);
    expect((await admin.call('PUT', url(`/projects/${staging}/members/${newId()}`))).statusCode).toBe(404);
    const rows = await h.t.owner.query<{ project_id: string }>('select project_id from project_access where org_id = $1 and user_id = $2', [acme, restrictedId]);
    expect(rows.map((r) => r.project_id)).toEqual([production]);
  });

  // In full: a restricted admin cannot widen anyone’s scope: not their own, not by invitation, not
  // beyond their projects
  it('a restricted admin cannot widen anyone\u2019s scope', async () => {
    const id = newId();
    const email = `radmin-${id.slice(0, 8)}@example.test`;
    await h.insertUser({ id, email, name: 'Restricted admin' });
    await h.t.owner.query("insert into memberships (org_id, user_id, role, restricted) values ($1, $2, 'admin', true)", [acme, id]);
    await h.t.owner.query('insert into project_access (org_id, project_id, user_id) values ($1, $2, $3)', [acme, production, id]);
    const me = await as(email);
    expect(idsOf(await me.call('GET', url('/projects')))).toEqual([production]);

    const refused = async (res: Promise<LightMyRequestResponse>, what: string) => {
      const r = await res;
      expect(r.statusCode, `${what}: ${r.body}`).toBe(403);
      expect(r.json()).toMatchObject({ code: 'privilege_escalation' });
    };
    await refused(me.call('PATCH', url(`/members/${id}`), { role: 'admin', restricted: false }), 'lift own restriction');
    await refused(me.call('PATCH', url(`/members/${id}`), { role: 'viewer', restricted: false }), 'unrestricted viewer');
    const other = newId();
    await h.insertUser({ id: other, email: `other-${other.slice(0, 8)}@example.test`, name: 'Other' });
    await h.t.owner.query("insert into memberships (org_id, user_id, role, restricted) values ($1, $2, 'viewer', true)", [acme, other]);
    await h.t.owner.query('insert into project_access (org_id, project_id, user_id) values ($1, $2, $3)', [acme, staging, other]);
    await refused(me.call('PATCH', url(`/members/${other}`), { role: 'viewer', restricted: false }), 'unrestrict another');
    await refused(me.call('PATCH', url(`/members/${other}`), { role: 'admin', restricted: true }), 'admin on a project not theirs');
    await refused(me.call('POST', url('/invitations'), { email: `x-${id.slice(0, 8)}@example.test`, role: 'viewer' }), 'unrestricted invitation');
    // A project outside their scope is invisible to them (RLS): 404, as for any unknown project.
    const hidden = await me.call('POST', url('/invitations'), { email: `y-${id.slice(0, 8)}@example.test`, role: 'viewer', restricted: true, projectIds: [staging] });
    expect(hidden.statusCode).toBe(404);

    const rows = await h.t.owner.query<{ user_id: string; role: string; restricted: boolean }>(
      'select user_id, role, restricted from memberships where org_id = $1 and user_id = any($2) order by role', [acme, [id, other]]);
    expect(rows).toEqual([{ user_id: id, role: 'admin', restricted: true }, { user_id: other, role: 'viewer', restricted: true }]);
    expect(idsOf(await me.call('GET', url('/projects')))).toEqual([production]);

    // Within their own scope they work as an admin.
    const inv = await me.call('POST', url('/invitations'), { email: `z-${id.slice(0, 8)}@example.test`, role: 'member', restricted: true, projectIds: [production] });
    expect(inv.statusCode).toBe(201);
    // An unrestricted invitation made before the inviter was restricted no longer grants anything.
    await h.t.owner.query('update memberships set restricted = false where org_id = $1 and user_id = $2', [acme, id]);
    const wide = await me.call('POST', url('/invitations'), { email: `w-${id.slice(0, 8)}@example.test`, role: 'viewer' });
    expect(wide.statusCode).toBe(201);
    await h.t.owner.query('update memberships set restricted = true where org_id = $1 and user_id = $2', [acme, id]);
    const inviteeEmail = `w-${id.slice(0, 8)}@example.test`;
    const { id: invitee } = await signUp(h, { email: inviteeEmail, name: 'Invitee' });
    const stale = await (await as(inviteeEmail)).call('POST', '/api/invitations/accept', { token: wide.json<{ token: string }>().token });
    expect(stale.statusCode, 'stale unrestricted invitation').toBe(400);
    expect(stale.json()).toMatchObject({ code: 'token_invalid' });
    expect(await h.t.owner.query('select 1 from memberships where org_id = $1 and user_id = $2', [acme, invitee])).toEqual([]);
  });

  /** A new user who is a member of acme, written directly (data from before the rules, or by hand). */
  async function seedMember(m: { role: string; customRoleId?: string; restricted: boolean; projects: string[] }): Promise<{ id: string; email: string }> {
    const id = newId();
    const email = `scope-${id.slice(0, 8)}@example.test`;
    await h.insertUser({ id, email, name: 'Scope test' });
    await h.t.owner.query('insert into memberships (org_id, user_id, role, custom_role_id, restricted) values ($1, $2, $3, $4, $5)',
      [acme, id, m.role, m.customRoleId ?? null, m.restricted]);
    for (const p of m.projects) await h.t.owner.query('insert into project_access (org_id, project_id, user_id) values ($1, $2, $3)', [acme, p, id]);
    return { id, email };
  }
  async function createRole(permissions: string[]): Promise<string> {
    const admin = await as(h.user('acme', 'admin').email);
    const res = await admin.call('POST', url('/roles'), { name: `scope-${newId().slice(0, 8)}`, permissions });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ id: string }>().id;
  }
  const membership = async (userId: string) =>
    (await h.t.owner.query<{ role: string; custom_role_id: string | null; restricted: boolean }>(
      'select role, custom_role_id, restricted from memberships where org_id = $1 and user_id = $2', [acme, userId]))[0];

  // review R4 finding 4
  // In full: a role with org-wide permissions is refused for a restricted member: assigned,
  // invited, or by restricting its holder
  it('a role with org-wide permissions is refused for a restricted member', async () => {
    const auditor = await createRole(['projects:read', 'assets:read', 'audit:read', 'webhooks:manage']);
    const admin = await as(h.user('acme', 'admin').email);
    const refusedNaming = (res: LightMyRequestResponse, ...perms: string[]) => {
      expect(res.statusCode, res.body).toBe(400);
      const body = res.json<{ code: string; detail: string }>();
      expect(body.code).toBe('validation_failed');
      for (const p of perms) expect(body.detail).toContain(p);
    };

    // Assigning the role to a member restricted to Production (the review's reproduction).
    const restricted = await seedMember({ role: 'member', restricted: true, projects: [production] });
    refusedNaming(await admin.call('PATCH', url(`/members/${restricted.id}`), { role: 'custom', customRoleId: auditor }), 'audit:read', 'webhooks:manage');
    refusedNaming(await admin.call('PATCH', url(`/members/${restricted.id}`), { role: 'custom', customRoleId: auditor, restricted: true }), 'audit:read');
    expect(await membership(restricted.id)).toEqual({ role: 'member', custom_role_id: null, restricted: true });

    // Restricting a member who holds such a role: the custom one, or the built-in admin.
    const holder = await seedMember({ role: 'member', restricted: false, projects: [] });
    expect((await admin.call('PATCH', url(`/members/${holder.id}`), { role: 'custom', customRoleId: auditor })).statusCode).toBe(204);
    refusedNaming(await admin.call('PATCH', url(`/members/${holder.id}`), { role: 'custom', customRoleId: auditor, restricted: true }), 'audit:read');
    expect(await membership(holder.id)).toEqual({ role: 'custom', custom_role_id: auditor, restricted: false });
    const owner = await as(h.user('acme', 'owner').email);
    refusedNaming(await owner.call('PATCH', url(`/members/${holder.id}`), { role: 'admin', restricted: true }), 'audit:read', 'settings:read', 'roles:write', 'projects:create');

    // An invitation may not promise it either.
    refusedNaming(await admin.call('POST', url('/invitations'), {
      email: `inv-${newId().slice(0, 8)}@example.test`, role: 'custom', customRoleId: auditor, restricted: true, projectIds: [production],
    }), 'audit:read');
    refusedNaming(await owner.call('POST', url('/invitations'), { email: `inv-${newId().slice(0, 8)}@example.test`, role: 'admin', restricted: true }), 'webhooks:manage');

    // Roles without org-wide permissions are restricted as before.
    const reader = await createRole(['projects:read', 'assets:read', 'members:read']);
    expect((await admin.call('PATCH', url(`/members/${restricted.id}`), { role: 'custom', customRoleId: reader })).statusCode).toBe(204);
    expect(await membership(restricted.id)).toEqual({ role: 'custom', custom_role_id: reader, restricted: true });
  });

  // review R4 finding 4
  // In full: a restricted member whose role still grants org-wide permissions (older data) is
  // refused every org-wide channel
  it('a restricted member whose role grants org-wide permissions is refused every org-wide channel', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    // An event about the unassigned project, which the trail would otherwise hand over.
    expect((await admin.call('PATCH', url(`/projects/${staging}`), { name: 'Staging' })).statusCode).toBe(200);
    const wide = await createRole(['projects:read', 'assets:read', 'audit:read', 'webhooks:manage', 'settings:read', 'keys:own', 'keys:manage']);
    const m = await seedMember({ role: 'custom', customRoleId: wide, restricted: true, projects: [production] });
    const me = await as(m.email);
    for (const path of ['/audit', '/webhooks', '/inbound-sources', '/settings']) {
      const res = await me.call('GET', url(path));
      expect(res.statusCode, `${path}: ${res.body}`).toBe(403);
      expect(res.json<{ code: string; detail: string }>()).toMatchObject({ code: 'forbidden', detail: expect.stringContaining('org-wide') });
    }
    expect((await me.call('POST', url('/webhooks'), { url: 'https://hooks.example.com/x', events: ['*'] })).statusCode).toBe(403);
    // keys:manage held restricted reaches no other member's key.
    expect((await me.call('GET', url('/api-keys'))).json<{ keys: unknown[] }>().keys).toEqual([]);
    // Within the project they work as before.
    expect((await me.call('GET', url(`/projects/${production}/assets`))).statusCode).toBe(200);
    // The built-in admin restricted by hand: the same.
    const radmin = await seedMember({ role: 'admin', restricted: true, projects: [production] });
    const ra = await as(radmin.email);
    for (const path of ['/audit', '/webhooks', '/settings']) expect((await ra.call('GET', url(path))).statusCode, path).toBe(403);
    expect((await ra.call('POST', url('/projects'), { name: 'outside' })).statusCode).toBe(403);
  });

  // review R4 finding 4 (the same class: the member roster and invitations list the whole org)
  it('a restricted reader lists only the members and invitations that reach one of their projects', async () => {
    const staffer = await seedMember({ role: 'member', restricted: true, projects: [staging] });
    const both = await seedMember({ role: 'viewer', restricted: true, projects: [production, staging] });
    const unassigned = await seedMember({ role: 'member', restricted: true, projects: [] });
    // Revoking needs what inviting needs (review R5 D): the manager covers the viewer role it revokes.
    const manager = await createRole(['org:read', 'roles:read', 'projects:read', 'assets:read', 'files:read', 'members:read', 'members:invite']);
    const me = await seedMember({ role: 'custom', customRoleId: manager, restricted: true, projects: [production] });
    const mine = await as(me.email);

    const seen = (await mine.call('GET', url('/members'))).json<{ members: { userId: string; projectIds: string[]; restricted: boolean }[] }>().members;
    const ids = seen.map((x) => x.userId);
    expect(ids).toContain(me.id);
    expect(ids).toContain(both.id);
    expect(ids).toContain(await userIdOf(h.user('acme', 'owner').email));
    expect(ids).toContain(await userIdOf(h.user('acme', 'restricted_member').email));
    expect(ids).not.toContain(staffer.id);
    expect(ids).not.toContain(unassigned.id);
    expect(seen.find((x) => x.userId === both.id)?.projectIds).toEqual([production]);
    expect(seen.every((x) => !x.restricted || x.projectIds.every((p) => p === production))).toBe(true);
    // The unrestricted view is unchanged.
    const full = (await (await as(h.user('acme', 'admin').email)).call('GET', url('/members'))).json<{ members: { userId: string }[] }>().members;
    expect(full.map((x) => x.userId)).toEqual(expect.arrayContaining([staffer.id, unassigned.id]));

    const admin = await as(h.user('acme', 'admin').email);
    const invite = async (body: object) => {
      const res = await admin.call('POST', url('/invitations'), { email: `list-${newId().slice(0, 8)}@example.test`, ...body });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ invitation: { id: string } }>().invitation.id;
    };
    const toStaging = await invite({ role: 'viewer', restricted: true, projectIds: [staging] });
    const toBoth = await invite({ role: 'viewer', restricted: true, projectIds: [production, staging] });
    const wideInv = await invite({ role: 'viewer' });
    const listed = (await mine.call('GET', url('/invitations'))).json<{ invitations: { id: string; projectIds: string[] }[] }>().invitations;
    expect(listed.map((i) => i.id)).not.toContain(toStaging);
    expect(listed.find((i) => i.id === toBoth)?.projectIds).toEqual([production]);
    expect(listed.map((i) => i.id)).toContain(wideInv);

    // Revoking: an invitation they cannot see is not found; one reaching beyond their projects is refused.
    expect((await mine.call('DELETE', url(`/invitations/${toStaging}`))).statusCode).toBe(404);
    const beyond = await mine.call('DELETE', url(`/invitations/${toBoth}`));
    expect(beyond.statusCode).toBe(403);
    expect(beyond.json()).toMatchObject({ code: 'privilege_escalation' });
    expect((await mine.call('DELETE', url(`/invitations/${wideInv}`))).statusCode).toBe(403);
    const own = await invite({ role: 'viewer', restricted: true, projectIds: [production] });
    expect((await mine.call('DELETE', url(`/invitations/${own}`))).statusCode).toBe(204);
    const pending = await h.t.owner.query<{ id: string }>('select id from invitations where id = any($1) and revoked_at is null', [[toStaging, toBoth, wideInv]]);
    expect(pending).toHaveLength(3);
  });
});
