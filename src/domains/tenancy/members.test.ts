import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { signUp } from '../../../test/support/accounts.js';
import { client, type Client } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId } from '../../crypto/index.js';


const uniqueEmail = (tag: string) => `${tag}-${newId().slice(0, 8)}@example.test`;

describe.each(ENGINES)('members and role changes on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  const as = async (email: string) => client(h, await h.cookieFor(email));

  /** A fresh user, optionally a member of `orgId` with `role`. */
  async function newUser(orgId?: string, role?: string): Promise<{ id: string; email: string }> {
    const id = newId();
    const email = uniqueEmail('user');
    await h.insertUser({ id, email, name: 'Test user' });
    if (orgId && role) await h.t.owner.query('insert into memberships (org_id, user_id, role) values ($1, $2, $3)', [orgId, id, role]);
    return { id, email };
  }
  async function roleOf(orgId: string, userId: string): Promise<string | null> {
    const r = await h.t.owner.query<{ role: string }>('select role from memberships where org_id = $1 and user_id = $2', [orgId, userId]);
    return r[0]?.role ?? null;
  }
  async function owners(orgId: string): Promise<string[]> {
    const r = await h.t.owner.query<{ user_id: string }>("select user_id from memberships where org_id = $1 and role = 'owner' order by user_id", [orgId]);
    return r.map((x) => x.user_id);
  }
  /** A new org whose only owner is a new user. */
  async function newOrg(): Promise<{ orgId: string; owner: Client; ownerId: string }> {
    const u = await newUser();
    const owner = await as(u.email);
    const res = await owner.call('POST', '/api/orgs', { name: 'Solo', slug: `solo-${newId().slice(0, 8)}` });
    expect(res.statusCode, res.body).toBe(201);
    return { orgId: res.json<{ id: string }>().id, owner, ownerId: u.id };
  }

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
  });
  afterAll(async () => h?.close());

  it('an admin cannot make anyone owner, change an owner, or grant a custom role above their own', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const target = await newUser(acme, 'member');
    const ownerId = await h.userId(h.user('acme', 'owner').email);

    const toOwner = await admin.call('PATCH', `/api/orgs/${acme}/members/${target.id}`, { role: 'owner' });
    expect(toOwner.statusCode).toBe(403);
    expect(toOwner.json()).toMatchObject({ code: 'privilege_escalation' });
    const onOwner = await admin.call('PATCH', `/api/orgs/${acme}/members/${ownerId}`, { role: 'viewer' });
    expect(onOwner.statusCode).toBe(403);
    expect(onOwner.json()).toMatchObject({ code: 'privilege_escalation' });

    const owner = await as(h.user('acme', 'owner').email);
    const role = await owner.call('POST', `/api/orgs/${acme}/roles`, { name: `owners-${newId().slice(0, 6)}`, permissions: ['org:read', 'owners:manage'] });
    expect(role.statusCode).toBe(201);
    const toCustom = await admin.call('PATCH', `/api/orgs/${acme}/members/${target.id}`, { role: 'custom', customRoleId: role.json<{ id: string }>().id });
    expect(toCustom.statusCode).toBe(403);
    expect(toCustom.json()).toMatchObject({ code: 'privilege_escalation' });

    const byMember = await (await as(h.user('acme', 'member').email)).call('PATCH', `/api/orgs/${acme}/members/${target.id}`, { role: 'viewer' });
    expect(byMember.statusCode).toBe(403);
    expect(byMember.json()).toMatchObject({ code: 'forbidden' });
    expect(await roleOf(acme, target.id)).toBe('member');
    expect(await roleOf(acme, ownerId ?? '')).toBe('owner');

    // Within their own rights it works.
    expect((await admin.call('PATCH', `/api/orgs/${acme}/members/${target.id}`, { role: 'admin' })).statusCode).toBe(204);
    expect(await roleOf(acme, target.id)).toBe('admin');
  });

  it('a role change takes effect on the next request and rotates the session', async () => {
    const u = await newUser(acme, 'viewer');
    const me = await as(u.email);
    const before = me.cookie;
    expect((await me.call('POST', `/api/orgs/${acme}/projects`, { name: 'Not yet' })).statusCode).toBe(403);
    const admin = await as(h.user('acme', 'admin').email);
    expect((await admin.call('PATCH', `/api/orgs/${acme}/members/${u.id}`, { role: 'admin' })).statusCode).toBe(204);
    const created = await me.call('POST', `/api/orgs/${acme}/projects`, { name: 'Now allowed' });
    expect(created.statusCode).toBe(201);
    expect(me.cookie).not.toBe(before);
    const stale = await h.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie: before } });
    expect(stale.statusCode).toBe(401);

    // Restricting a member: no project assigned yet, so none is visible.
    expect((await admin.call('PATCH', `/api/orgs/${acme}/members/${u.id}`, { role: 'member', restricted: true })).statusCode).toBe(204);
    const list = await me.call('GET', `/api/orgs/${acme}/projects`);
    expect(list.statusCode).toBe(200);
    expect(list.json()).toEqual({ projects: [] });
  });

  it('the last owner cannot be demoted, removed or leave; with a second owner they can', async () => {
    const { orgId, owner, ownerId } = await newOrg();
    for (const [method, url, body] of [
      ['PATCH', `/api/orgs/${orgId}/members/${ownerId}`, { role: 'admin' }],
      ['DELETE', `/api/orgs/${orgId}/members/${ownerId}`, undefined],
      ['POST', `/api/orgs/${orgId}/leave`, undefined],
    ] as const) {
      const res = await owner.call(method, url, body);
      expect(res.statusCode, `${method} ${url}`).toBe(409);
      expect(res.json()).toMatchObject({ code: 'last_owner' });
    }
    expect(await owners(orgId)).toEqual([ownerId]);

    // A second owner arrives through an invitation (a registered, verified account).
    const second = await signUp(h, { email: uniqueEmail('second-owner') });
    const inv = await owner.call('POST', `/api/orgs/${orgId}/invitations`, { email: second.email, role: 'owner' });
    expect(inv.statusCode).toBe(201);
    const other = await as(second.email);
    expect((await other.call('POST', '/api/invitations/accept', { token: inv.json<{ token: string }>().token })).statusCode).toBe(200);
    expect(await owners(orgId)).toEqual([ownerId, second.id].sort());

    expect((await owner.call('PATCH', `/api/orgs/${orgId}/members/${ownerId}`, { role: 'admin' })).statusCode).toBe(204);
    expect(await owners(orgId)).toEqual([second.id]);
    // Now the second is the last one; the demoted admin cannot touch them.
    expect((await other.call('POST', `/api/orgs/${orgId}/leave`)).json()).toMatchObject({ code: 'last_owner' });
    const adminOnOwner = await owner.call('DELETE', `/api/orgs/${orgId}/members/${second.id}`);
    expect(adminOnOwner.statusCode).toBe(403);
    expect(adminOnOwner.json()).toMatchObject({ code: 'privilege_escalation' });

    expect((await other.call('PATCH', `/api/orgs/${orgId}/members/${ownerId}`, { role: 'owner' })).statusCode).toBe(204);
    expect((await owner.call('POST', `/api/orgs/${orgId}/leave`)).statusCode).toBe(204);
    expect(await roleOf(orgId, ownerId)).toBeNull();
    expect((await owner.call('GET', `/api/orgs/${orgId}`)).statusCode).toBe(404);
    // The remaining owner may remove… nobody but themselves, and that is refused.
    expect((await other.call('DELETE', `/api/orgs/${orgId}/members/${second.id}`)).statusCode).toBe(409);
  });

  it('two owners demoting each other at once leave exactly one owner', async () => {
    for (const mode of ['demote', 'remove', 'leave'] as const) {
      const { orgId, owner: a, ownerId: aId } = await newOrg();
      const bUser = await newUser(orgId, 'owner');
      const b = await as(bUser.email);
      const act = (c: Client, otherId: string) =>
        mode === 'demote' ? c.call('PATCH', `/api/orgs/${orgId}/members/${otherId}`, { role: 'admin' })
          : mode === 'remove' ? c.call('DELETE', `/api/orgs/${orgId}/members/${otherId}`)
            : c.call('POST', `/api/orgs/${orgId}/leave`);
      const results = await Promise.all([act(a, bUser.id), act(b, aId)]);
      const why = `${mode}: ${results.map((r) => r.body).join(' | ')}`;
      const [won, lost] = [...results].sort((x, y) => x.statusCode - y.statusCode) as [LightMyRequestResponse, LightMyRequestResponse];
      expect(won.statusCode, why).toBe(204);
      // The loser either still held its owner rights when it ran (last_owner) or had already
      // lost them (privilege_escalation, or not_found once removed): never a 5xx, never 204.
      const expected = { demote: ['409 last_owner', '403 privilege_escalation'], remove: ['409 last_owner', '404 not_found'], leave: ['409 last_owner'] }[mode];
      expect(expected, why).toContain(`${lost.statusCode} ${lost.json<{ code: string }>().code}`);
      expect(await owners(orgId)).toHaveLength(1);
    }
  });

  it('an admin removes a member: membership gone, their next request to the org is 404', async () => {
    const admin = await as(h.user('acme', 'admin').email);
    const m = await newUser(acme, 'member');
    const victim = await as(m.email);
    expect((await victim.call('GET', `/api/orgs/${acme}/projects`)).statusCode).toBe(200);

    const res = await admin.call('DELETE', `/api/orgs/${acme}/members/${m.id}`);
    expect(res.statusCode).toBe(204);
    expect(await roleOf(acme, m.id)).toBeNull();
    const members = (await admin.call('GET', `/api/orgs/${acme}/members`)).json<{ members: { userId: string }[] }>().members;
    expect(members.map((x) => x.userId)).not.toContain(m.id);
    for (const url of [`/api/orgs/${acme}/projects`, `/api/orgs/${acme}`, `/api/orgs/${acme}/members`]) {
      const after = await victim.call('GET', url);
      expect(after.statusCode, url).toBe(404);
      expect(after.json()).toMatchObject({ code: 'not_found' });
    }
    expect((await victim.call('GET', '/api/me')).json<{ orgs: unknown[] }>().orgs).toEqual([]);
    expect((await admin.call('DELETE', `/api/orgs/${acme}/members/${m.id}`)).statusCode).toBe(404);
  });

  it('an admin cannot remove an owner; a member cannot remove anyone', async () => {
    const ownerId = await h.userId(h.user('acme', 'owner').email);
    const res = await (await as(h.user('acme', 'admin').email)).call('DELETE', `/api/orgs/${acme}/members/${ownerId}`);
    expect(res.statusCode).toBe(403);
    expect(res.json()).toMatchObject({ code: 'privilege_escalation' });
    const viewerId = await h.userId(h.user('acme', 'viewer').email);
    const byMember = await (await as(h.user('acme', 'member').email)).call('DELETE', `/api/orgs/${acme}/members/${viewerId}`);
    expect(byMember.statusCode).toBe(403);
    expect(byMember.json()).toMatchObject({ code: 'forbidden' });
    expect(await roleOf(acme, ownerId)).toBe('owner');
    expect(await roleOf(acme, viewerId)).toBe('viewer');
  });
});
