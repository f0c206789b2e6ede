/**
 * What a key and a key manager can reach, as the third attacker review (S3, machine access,
 * 96efc88) tried it: the admin IP allowlist, restricted managers, the per-member cap, scopes, the
 * key and console contexts, publishable keys' origins and keys bound to a deleted project. Each
 * "fixed" case failed against the code as reviewed; fixes in src/http/pipeline.ts and
 * src/kernel/permissions.ts (withoutAdminLevel). The API key basics are in keys.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type Problem, type TestApp } from '../support/app.js';
import { bearer, call, client, code, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { freshOrg, passwordUser } from '../support/users.js';
import { auditSelect } from '../support/evidence.js';

type Json = Record<string, unknown>;
interface KeyView {
  id: string;
  createdBy: string;
}

describe.each(ENGINES)('API key boundaries on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let admin: Client;
  let run = 0;
  const uniq = () => `${engine}-${run++}-${Math.random().toString(36).slice(2, 8)}`;
  const as = async (email: string) => client(h, await h.cookieFor(email));

  async function createKey(by: Client, body: Json, org = acme): Promise<{ key: KeyView; token: string }> {
    const res = await by.call('POST', `/api/orgs/${org}/api-keys`, body);
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    admin = await as(h.user('acme', 'admin').email);
  });
  afterAll(async () => h?.close());

  // review S3 K-1, fixed (the third attacker review: machine access, 96efc88). It failed as:
  // keys:manage bypassed the admin IP allowlist, so from outside it an admin listed and revoked
  // every member's keys through the keys:own routes. Fix: src/http/pipeline.ts (no admin-level
  // permission from outside the admin IP allowlist), src/kernel/permissions.ts (withoutAdminLevel).
  it('keys:manage gives nothing outside the admin IP allowlist; keys:own still works from anywhere', async () => {
    const { orgId, cookie: ownerCookie } = await freshOrg(h);
    const orgAdmin = await passwordUser(h, orgId, 'admin');
    const member = await passwordUser(h, orgId, 'member');
    const { key, token } = await createKey(client(h, await h.cookieFor(member.email)), { name: 'member ci', kind: 'secret', permissions: ['projects:read'] }, orgId);
    const inside = '198.51.100.7';
    const outside = '203.0.113.9';
    const saved = await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie: ownerCookie, ip: inside, payload: { adminIpAllowlist: ['198.51.100.0/24'] } });
    expect(saved.statusCode, saved.body).toBe(200);
    const adminCookie = await h.cookieFor(orgAdmin.email);
    // A stolen admin session used from elsewhere: admin-level routes refuse it.
    expect(code(await call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie: adminCookie, ip: outside }))).toBe('ip_not_allowed');

    // keys:manage (admin-level) acts through routes that need only keys:own (member-level).
    const listed = (await call(h, 'GET', `/api/orgs/${orgId}/api-keys`, { cookie: adminCookie, ip: outside })).json<{ keys: KeyView[] }>().keys;
    expect(listed.map((k) => k.id), 'every member\u2019s keys listed from outside the allowlist').not.toContain(key.id);
    const revoked = await call(h, 'DELETE', `/api/orgs/${orgId}/api-keys/${key.id}`, { cookie: adminCookie, ip: outside });
    expect(revoked.statusCode, 'another member\u2019s key revoked from outside the allowlist').not.toBe(204);
    expect((await bearer(h, 'GET', `/v1/orgs/${orgId}/projects`, token)).statusCode).toBe(200);
    // From outside, a key is not a way to mint admin-level rights either.
    const minted = await call(h, 'POST', `/api/orgs/${orgId}/api-keys`, { cookie: adminCookie, ip: outside, payload: { name: 'x', kind: 'secret', permissions: ['projects:delete'] } });
    expect(minted.statusCode).toBe(403);
    // Member-level work goes on from anywhere: own keys with member-level scopes.
    expect((await call(h, 'POST', `/api/orgs/${orgId}/api-keys`, { cookie: adminCookie, ip: outside, payload: { name: 'y', kind: 'secret', permissions: ['projects:read'] } })).statusCode).toBe(201);

    // From inside the list, keys:manage works as before.
    const inList = (await call(h, 'GET', `/api/orgs/${orgId}/api-keys`, { cookie: adminCookie, ip: inside })).json<{ keys: KeyView[] }>().keys;
    expect(inList.map((k) => k.id)).toContain(key.id);
    expect((await call(h, 'DELETE', `/api/orgs/${orgId}/api-keys/${key.id}`, { cookie: adminCookie, ip: inside })).statusCode).toBe(204);
    expect((await bearer(h, 'GET', `/v1/orgs/${orgId}/projects`, token)).statusCode).toBe(401);
  });

  // review S3 K-5, fixed
  it('a member restricted to projects who holds keys:manage sees and revokes only their own keys', async () => {
    const roleId = crypto.randomUUID();
    await h.t.owner.query(`insert into custom_roles (org_id, id, name, permissions) values ($1, $2, $3, $4)`,
      [acme, roleId, `keymgr-${uniq()}`, ['org:read', 'projects:read', 'keys:own', 'keys:manage']]);
    const id = crypto.randomUUID();
    const email = `keymgr-${uniq()}@example.test`;
    await h.insertUser({ id, email, name: 'restricted key manager' });
    await h.t.owner.query(`insert into memberships (org_id, user_id, role, custom_role_id, restricted) values ($1, $2, 'custom', $3, true)`, [acme, id, roleId]);
    const projectA = h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id as string;
    await h.t.owner.query('insert into project_access (org_id, project_id, user_id) values ($1, $2, $3)', [acme, projectA, id]);
    const adminKey = await createKey(admin, { name: `admin-${uniq()}`, kind: 'secret', permissions: ['projects:read'] });
    const restricted = client(h, await h.cookieFor(email));
    const own = await createKey(restricted, { name: `mine-${uniq()}`, kind: 'secret', permissions: ['projects:read'] });
    const listed = (await restricted.call('GET', `/api/orgs/${acme}/api-keys`)).json<{ keys: KeyView[] }>().keys;
    expect(listed.map((k) => k.id)).toEqual([own.key.id]);
    expect((await restricted.call('DELETE', `/api/orgs/${acme}/api-keys/${adminKey.key.id}`)).statusCode).toBe(404);
    expect((await restricted.call('DELETE', `/api/orgs/${acme}/api-keys/${own.key.id}`)).statusCode).toBe(204);
  });

  // review S3 K-4, fixed
  it('one member holds at most 25 active keys, under the org’s 500', async () => {
    const m = await passwordUser(h, acme, 'member');
    const member = client(h, await h.cookieFor(m.email));
    for (let i = 0; i < 25; i++) await createKey(member, { name: `k${i}`, kind: 'secret', permissions: ['projects:read'] });
    const over = await member.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'k25', kind: 'secret', permissions: ['projects:read'] });
    expect(over.statusCode).toBe(409);
    // Someone else still creates theirs.
    await createKey(admin, { name: `other-${uniq()}`, kind: 'secret', permissions: ['projects:read'] });
  });

  // review S3 (SOUND: tried and refused). Scopes never exceed the creator, the kind or the binding:
  // the catalogue, a custom role, restricted and foreign projects, expiry edges.
  it('never scopes a key beyond its creator, its kind or its binding', async () => {
    const owner = await as(h.user('acme', 'owner').email);
    const member = client(h, await h.cookieFor(h.user('acme', 'member').email));
    const restricted = client(h, await h.cookieFor(h.user('acme', 'restricted_member').email));
    const globexProject = h.demo.orgs.find((o) => o.slug === 'globex')?.projects[0]?.id as string;
    const acmeProjects = h.demo.orgs.find((o) => o.slug === 'acme')?.projects.map((p) => p.id) as string[];
    const now = h.clock.now().getTime();
    const refusals: [Client, Json, number][] = [
      [member, { name: 'x', kind: 'secret', permissions: ['audit:read'] }, 403],
      [member, { name: 'x', kind: 'secret', permissions: ['keys:own'] }, 400],
      [admin, { name: 'x', kind: 'secret', permissions: ['webhooks:manage'] }, 400],
      [admin, { name: 'x', kind: 'publishable', permissions: ['members:read'] }, 400],
      [admin, { name: 'x', kind: 'secret', permissions: ['projects:read'], projectId: globexProject }, 404],
      [restricted, { name: 'x', kind: 'secret', permissions: ['projects:read'], projectId: acmeProjects[1] }, 404],
      [admin, { name: 'x', kind: 'secret', permissions: ['projects:read'], expiresAt: new Date(now + 60_000).toISOString() }, 400],
      [admin, { name: 'x', kind: 'secret', permissions: ['projects:read'], expiresAt: new Date(now + 731 * 86_400_000).toISOString() }, 400],
      [admin, { name: 'x', kind: 'sk', permissions: ['projects:read'] }, 400],
    ];
    for (const [who, body, status] of refusals) {
      const res = await who.call('POST', `/api/orgs/${acme}/api-keys`, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(status);
    }
    // A custom role narrower than the member role: its holder's key gets no more.
    const role = await owner.call('POST', `/api/orgs/${acme}/roles`, { name: `s3 keys ${uniq()}`, permissions: ['org:read', 'projects:read', 'keys:own'] });
    expect(role.statusCode, role.body).toBe(201);
    const u = await passwordUser(h);
    await h.t.owner.query("insert into memberships (org_id, user_id, role, custom_role_id) values ($1, $2, 'custom', $3)", [acme, u.id, role.json<{ id: string }>().id]);
    const custom = client(h, await h.cookieFor(u.email));
    expect((await custom.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: ['assets:read'] })).json<Problem>().code).toBe('privilege_escalation');
    const { token } = await createKey(custom, { name: 'custom', kind: 'secret', permissions: ['org:read', 'projects:read'] });
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, token)).json<{ permissions: string[] }>().permissions).toEqual(['org:read', 'projects:read']);
    // The role loses projects:read: so does the key, on its next request.
    expect((await owner.call('PATCH', `/api/orgs/${acme}/roles/${role.json<{ id: string }>().id}`, { permissions: ['org:read', 'keys:own'] })).statusCode).toBe(200);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, token)).statusCode).toBe(403);
    // The same token with the other prefix fails the checksum; the key never answers for another org.
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, token.replace('pal_sk_', 'pal_pk_'))).statusCode).toBe(401);
    expect((await bearer(h, 'GET', `/v1/orgs/${globex}/key`, token)).statusCode).toBe(401);
  });

  // review S3 (SOUND: tried and refused)
  it('the key and console contexts stay apart under path tricks, methods and ambient cookies', async () => {
    const { token } = await createKey(admin, { name: 'paths', kind: 'secret', permissions: ['org:read', 'projects:read', 'projects:create'] });
    const tricks = [
      `//v1/orgs/${acme}/projects`, `/V1/orgs/${acme}/projects`, `/v1/orgs/${acme}/projects/`, `/v1%2Forgs/${acme}/projects`,
      `/v1/orgs/${acme}/../../api/orgs/${acme}/projects`, `/v1/orgs/${acme}/%2e%2e/%2e%2e/api/orgs/${acme}/projects`,
      `/api/orgs/${acme}/projects`, `/api/orgs/${acme}/../../v1/orgs/${acme}/projects`, `/v1/orgs/${acme}/settings`, `/v1/orgs/${acme}/api-keys`,
      `/v1/orgs/${acme}/webhooks`,
    ];
    for (const url of tricks) {
      const res = await bearer(h, 'GET', url, token);
      expect([401, 404], `${url} -> ${res.statusCode}`).toContain(res.statusCode);
    }
    expect((await bearer(h, 'HEAD', `/v1/orgs/${acme}/projects`, token)).statusCode).toBe(404);
    // A cross-site form or fetch with the console cookie and no key: nothing is read, nothing is written.
    const count = async () => (await h.t.owner.query<{ n: number }>('select count(*)::int as n from projects where org_id = $1', [acme]))[0]?.n;
    const before = await count();
    const ownerCookie = await h.cookieFor(h.user('acme', 'owner').email);
    for (const origin of ['https://evil.example', 'null', ORIGIN]) {
      const res = await h.built.app.inject({ method: 'POST', url: `/v1/orgs/${acme}/projects`, headers: { cookie: ownerCookie, origin }, payload: { name: 'csrf' } });
      expect(res.statusCode, origin).toBe(401);
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    }
    // And a key on a console mutation from another site: refused before anything runs.
    const res = await bearer(h, 'POST', `/api/orgs/${acme}/projects`, token, { headers: { origin: 'https://evil.example' }, payload: { name: 'csrf' } });
    expect(res.statusCode).toBe(403);
    expect(await count()).toBe(before);
  });

  // review S3 (SOUND: tried and refused). A publishable key answers only to an exact registered
  // Origin: no null, no Referer alone, no other scheme, port or name.
  it('a publishable key answers only to an exact registered Origin', async () => {
    const owner = await as(h.user('acme', 'owner').email);
    expect((await owner.call('PATCH', `/api/orgs/${acme}/settings`, { browserOrigins: ['null'] })).statusCode).toBe(400);
    expect((await owner.call('PATCH', `/api/orgs/${acme}/settings`, { browserOrigins: ['https://shop.example'] })).statusCode).toBe(200);
    const { token } = await createKey(admin, { name: 'storefront', kind: 'publishable', permissions: ['projects:read'] });
    const url = `/v1/orgs/${acme}/projects`;
    const probes: Record<string, string>[] = [
      { origin: 'null' }, { referer: 'https://shop.example/checkout' }, { origin: 'http://shop.example' }, { origin: 'https://shop.example:8443' },
      { origin: 'https://shop.example.' }, { origin: 'https://shop.example.evil.example' }, { origin: 'https://shop.example/' }, {},
    ];
    for (const headers of probes) {
      const res = await bearer(h, 'GET', url, token, { headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(403);
      expect(res.json<Problem>().code).toBe('origin_not_allowed');
    }
    expect((await bearer(h, 'GET', url, token, { headers: { origin: 'https://shop.example' } })).statusCode).toBe(200);
  });

  // review S3 K-6, fixed
  it('deleting a project revokes the keys bound to it, audited, and keeps their rows', async () => {
    const project = (await admin.call('POST', `/api/orgs/${acme}/projects`, { name: `doomed-${uniq()}` })).json<{ id: string }>().id;
    const bound = await createKey(admin, { name: `bound-${uniq()}`, kind: 'secret', permissions: ['projects:read', 'assets:read'], projectId: project });
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects/${project}/assets`, bound.token)).statusCode).toBe(200);
    expect((await admin.call('DELETE', `/api/orgs/${acme}/projects/${project}`)).statusCode).toBe(204);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, bound.token)).statusCode).toBe(401);
    const listed = (await admin.call('GET', `/api/orgs/${acme}/api-keys`)).json<{ keys: (KeyView & { status: string; projectId: string })[] }>().keys;
    expect(listed.find((k) => k.id === bound.key.id)).toMatchObject({ status: 'revoked', projectId: project });
    const events = await auditSelect<{ details: { reason?: string } }>(h, ['details'], `where org_id = $1 and action = 'api_key.revoked' and target_id = $2`, [acme, bound.key.id],
    );
    expect(events.map((e) => e.details.reason)).toEqual(['project_deleted']);
  });
});
