/**
 * API keys end to end: creation shown once, the checksum refused before lookup, scopes within
 * the creator's current rights, project binding (RLS too), publishable keys held to registered
 * origins, every credential in its own context, and the key named in the audit trail.
 */
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken } from '../../src/crypto/index.js';
import { createApiKeyService, createKeyUsage } from '../../src/domains/api-keys/index.js';
import type { Database } from '../../src/db/database.js';
import { createTestApp, ORIGIN, type Problem, type TestApp } from '../support/app.js';
import { bearer, client, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { auditSelect } from '../support/evidence.js';

interface KeyView {
  id: string;
  name: string;
  kind: string;
  prefix: string;
  lastFour: string;
  permissions: string[];
  projectId: string | null;
  createdBy: string;
  lastUsedAt: string | null;
  status: string;
}

describe.each(ENGINES)('API keys on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let projectA: string;
  let projectB: string;
  let admin: Client;
  const as = async (email: string) => client(h, await h.cookieFor(email));

  async function createKey(by: Client, body: Record<string, unknown>, org = acme): Promise<{ key: KeyView; token: string }> {
    const res = await by.call('POST', `/api/orgs/${org}/api-keys`, body);
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    const org = h.demo.orgs.find((o) => o.slug === 'acme');
    projectA = org?.projects[0]?.id as string;
    projectB = org?.projects[1]?.id as string;
    admin = await as(h.user('acme', 'admin').email);
  });
  afterAll(async () => h?.close());

  it('shows the token once, stores only its hash, lists prefix and last four', async () => {
    const { key, token } = await createKey(admin, { name: 'ci deploy', kind: 'secret', permissions: ['projects:read', 'assets:read'] });
    expect(token).toMatch(/^pal_sk_[0-9A-Za-z]{36}$/);
    expect(key).toMatchObject({ name: 'ci deploy', kind: 'secret', prefix: 'pal_sk_', lastFour: token.slice(-4), status: 'active', projectId: null });
    expect(JSON.stringify(key)).not.toContain(token.slice(7, 30));
    const listed = (await admin.call('GET', `/api/orgs/${acme}/api-keys`)).json<{ keys: KeyView[] }>().keys;
    expect(listed.find((k) => k.id === key.id)).toMatchObject({ lastFour: token.slice(-4) });
    expect(JSON.stringify(listed)).not.toContain(token.slice(7, 30));
    const stored = await h.t.owner.query<{ token_hash: string }>('select token_hash from api_keys where id = $1', [key.id]);
    expect(stored[0]?.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(stored)).not.toContain(token);
  });

  it('works with Bearer on /v1 routes only; cookies never count there, keys never on console routes', async () => {
    const { token } = await createKey(admin, { name: 'reader', kind: 'secret', permissions: ['projects:read'] });
    const ok = await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, token);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json<{ projects: unknown[] }>().projects.length).toBeGreaterThanOrEqual(2);
    // The same key on the console route of the same resource: not a credential there.
    expect((await bearer(h, 'GET', `/api/orgs/${acme}/projects`, token)).statusCode).toBe(401);
    // A session cookie on the key route: not a credential there.
    const cookie = await h.cookieFor(h.user('acme', 'owner').email);
    const withCookie = await h.built.app.inject({ method: 'GET', url: `/v1/orgs/${acme}/projects`, headers: { cookie, origin: ORIGIN } });
    expect(withCookie.statusCode).toBe(401);
    // Console-only resources have no /v1 route at all.
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/settings`, token)).statusCode).toBe(404);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/api-keys`, token)).statusCode).toBe(404);
    // Every key can read its org, and so look at itself.
    const whoami = await bearer(h, 'GET', `/v1/orgs/${acme}/key`, token);
    expect(whoami.statusCode).toBe(200);
    expect(whoami.json()).toMatchObject({ kind: 'secret', orgId: acme, permissions: ['org:read', 'projects:read'], projectIds: null });
    // A key on a console route is told where keys work (nothing about the key itself).
    expect((await bearer(h, 'GET', `/api/orgs/${acme}/projects`, token)).json<Problem>().detail).toMatch(/\/v1/);
  });

  it('refuses malformed, checksum-broken, unknown, other-org, revoked and expired keys alike', async () => {
    const { key, token } = await createKey(admin, { name: 'short-lived', kind: 'secret', permissions: ['org:read', 'projects:read'], expiresAt: new Date(h.clock.now().getTime() + 3_600_000).toISOString() });
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, token)).statusCode).toBe(200);
    const flipped = token.slice(0, 10) + (token[10] === 'a' ? 'b' : 'a') + token.slice(11);
    const attempts = [
      flipped, // a typo: the checksum no longer holds
      token.slice(0, -1), // truncated
      `${token}x`,
      generateApiToken('sk'), // well-formed, unknown
      token.replace('pal_sk_', 'pal_pk_'), // the kind swapped: the checksum covers it
      'pal_sk_', '', 'x'.repeat(5000),
    ];
    for (const t of attempts) {
      const res = await bearer(h, 'GET', `/v1/orgs/${acme}/key`, t);
      expect(res.statusCode, t.slice(0, 20)).toBe(401);
      expect(res.json<Problem>().code).toBe('unauthenticated');
    }
    for (const header of ['Basic abc', 'Bearer', `Bearer  ${token}`, `Token ${token}`, `Bearer ${token} extra`]) {
      const res = await h.built.app.inject({ method: 'GET', url: `/v1/orgs/${acme}/key`, headers: { authorization: header } });
      expect(res.statusCode, header).toBe(401);
    }
    // The key of acme is nobody in globex (RLS hides it from the lookup there).
    expect((await bearer(h, 'GET', `/v1/orgs/${globex}/key`, token)).statusCode).toBe(401);
    expect((await bearer(h, 'GET', `/v1/orgs/${globex}/projects`, token)).statusCode).toBe(401);

    h.clock.advance(3_600_000);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, token)).statusCode).toBe(401);
    h.clock.advance(-3_600_000);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, token)).statusCode).toBe(200);
    expect((await admin.call('DELETE', `/api/orgs/${acme}/api-keys/${key.id}`)).statusCode).toBe(204);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, token)).statusCode).toBe(401);
    expect((await admin.call('DELETE', `/api/orgs/${acme}/api-keys/${key.id}`)).statusCode).toBe(409);
  });

  it('checks the checksum before any database lookup', async () => {
    let lookups = 0;
    const counting = new Proxy(h.t.db, {
      get(target, prop, receiver) {
        if (prop === 'authenticateInOrg') {
          return (...args: Parameters<Database['authenticateInOrg']>) => {
            lookups++;
            return target.authenticateInOrg(...args);
          };
        }
        return Reflect.get(target, prop, receiver) as unknown;
      },
    });
    const usage = createKeyUsage({ db: h.t.db, onError: () => undefined });
    const service = createApiKeyService({ db: counting, audit: h.built.services.audit, clock: h.clock, usage });
    const good = generateApiToken('sk');
    const broken = good.slice(0, -1) + (good.endsWith('0') ? '1' : '0');
    expect(await service.authenticate(broken, acme, null)).toBeNull();
    expect(await service.authenticate('pal_sk_short', acme, null)).toBeNull();
    expect(lookups).toBe(0);
    expect(await service.authenticate(good, acme, null)).toBeNull();
    expect(lookups).toBe(1);
    await usage.close();
  });

  // review R4 finding 7
  // In full: revoking another member’s key is acting on them: an admin cannot revoke an owner’s key
  // (audited refusal), an owner can revoke an admin’s, an admin a member’s
  it('revoking another member\u2019s key is acting on them, held to the role order', async () => {
    const owner = await as(h.user('acme', 'owner').email);
    const member = await as(h.user('acme', 'member').email);
    const ownerKey = await createKey(owner, { name: 'owner integration', kind: 'secret', permissions: ['projects:read'] });
    const refused = await admin.call('DELETE', `/api/orgs/${acme}/api-keys/${ownerKey.key.id}`);
    expect(refused.statusCode, refused.body).toBe(403);
    expect(refused.json<Problem>()).toMatchObject({ code: 'privilege_escalation', detail: expect.stringContaining('owners:manage') });
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, ownerKey.token)).statusCode).toBe(200);
    const [stored] = await h.t.owner.query<{ revoked_at: Date | null }>('select revoked_at from api_keys where id = $1', [ownerKey.key.id]);
    expect(stored?.revoked_at).toBeNull();
    // Recorded like the pipeline's refusals: who tried, on which route, why.
    const [denied] = await auditSelect<{ actor_id: string; result: string; details: { route: string; reason: string } }>(h, ['actor_id', 'result', 'details'], `where org_id = $1 and action = 'authz.denied' order by seq desc limit 1`, [acme],
    );
    const adminId = await h.userId(h.user('acme', 'admin').email);
    expect(denied).toEqual({ actor_id: adminId, result: 'denied', details: { route: 'DELETE /api/orgs/:orgId/api-keys/:keyId', reason: 'privilege_escalation' } });

    const adminKey = await createKey(admin, { name: 'admin integration', kind: 'secret', permissions: ['projects:read'] });
    expect((await owner.call('DELETE', `/api/orgs/${acme}/api-keys/${adminKey.key.id}`)).statusCode).toBe(204);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, adminKey.token)).statusCode).toBe(401);
    const memberKey = await createKey(member, { name: 'member integration', kind: 'secret', permissions: ['projects:read'] });
    expect((await admin.call('DELETE', `/api/orgs/${acme}/api-keys/${memberKey.key.id}`)).statusCode).toBe(204);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, memberKey.token)).statusCode).toBe(401);
    // Everyone revokes their own, the owner included.
    expect((await owner.call('DELETE', `/api/orgs/${acme}/api-keys/${ownerKey.key.id}`)).statusCode).toBe(204);
  });

  // review R4 finding 7 (the same rule as for signing out): keys:manage without every permission
  // the creator holds does not reach the creator's keys.
  it('a custom role holding keys:manage revokes the keys of members it covers, not an admin\u2019s', async () => {
    const roleId = crypto.randomUUID();
    await h.t.owner.query('insert into custom_roles (org_id, id, name, permissions) values ($1, $2, $3, $4)',
      [acme, roleId, `key steward ${roleId.slice(0, 8)}`, ['org:read', 'members:read', 'roles:read', 'projects:read', 'assets:read', 'assets:write', 'files:read', 'files:write', 'keys:own', 'keys:manage']]);
    const id = crypto.randomUUID();
    const email = `steward-${id.slice(0, 8)}@example.test`;
    await h.insertUser({ id, email, name: 'Key steward' });
    await h.t.owner.query("insert into memberships (org_id, user_id, role, custom_role_id) values ($1, $2, 'custom', $3)", [acme, id, roleId]);
    const steward = await as(email);
    const adminKey = await createKey(admin, { name: 'admin ci', kind: 'secret', permissions: ['projects:read'] });
    const refused = await steward.call('DELETE', `/api/orgs/${acme}/api-keys/${adminKey.key.id}`);
    expect(refused.json<Problem>()).toMatchObject({ code: 'privilege_escalation', detail: expect.stringContaining('members:update') });
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, adminKey.token)).statusCode).toBe(200);
    const memberKey = await createKey(await as(h.user('acme', 'member').email), { name: 'member ci', kind: 'secret', permissions: ['projects:read'] });
    expect((await steward.call('DELETE', `/api/orgs/${acme}/api-keys/${memberKey.key.id}`)).statusCode).toBe(204);
  });

  it('holds scopes to the catalogue for keys and to what the creator holds', async () => {
    const member = await as(h.user('acme', 'member').email);
    expect((await member.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: ['projects:create'] })).json<Problem>().code).toBe('privilege_escalation');
    expect((await admin.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: ['members:invite'] })).statusCode).toBe(400);
    expect((await admin.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: ['keys:own'] })).statusCode).toBe(400);
    expect((await admin.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: [] })).statusCode).toBe(400);
    expect((await admin.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: ['projects:read'], expiresAt: '2001-01-01T00:00:00Z' })).statusCode).toBe(400);
    const viewer = await as(h.user('acme', 'viewer').email);
    expect((await viewer.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: ['projects:read'] })).statusCode).toBe(403);

    const { token } = await createKey(member, { name: 'member writer', kind: 'secret', permissions: ['assets:read', 'assets:write'] });
    const created = await bearer(h, 'POST', `/v1/orgs/${acme}/projects/${projectA}/assets`, token, { payload: { name: 'from-key', kind: 'host' } });
    expect(created.statusCode, created.body).toBe(201);
    expect((await bearer(h, 'POST', `/v1/orgs/${acme}/projects`, token, { payload: { name: 'nope' } })).statusCode).toBe(403);
    // A member sees and revokes only their own keys.
    const mine = (await member.call('GET', `/api/orgs/${acme}/api-keys`)).json<{ keys: KeyView[] }>().keys;
    expect(mine.length).toBeGreaterThan(0);
    const memberId = mine[0]?.createdBy;
    expect(mine.every((k) => k.createdBy === memberId)).toBe(true);
    const others = (await admin.call('GET', `/api/orgs/${acme}/api-keys`)).json<{ keys: KeyView[] }>().keys.filter((k) => k.createdBy !== memberId);
    expect(others.length).toBeGreaterThan(0);
    expect((await member.call('DELETE', `/api/orgs/${acme}/api-keys/${others[0]?.id}`)).statusCode).toBe(404);
  });

  it('loses what its creator loses: demotion narrows it, removal ends it, re-joining does not revive it', async () => {
    const id = crypto.randomUUID();
    const email = `keys-${id.slice(0, 8)}@example.test`;
    await h.insertUser({ id, email, name: 'Key creator' });
    await h.t.owner.query('insert into memberships (org_id, user_id, role) values ($1, $2, $3)', [acme, id, 'admin']);
    const creator = await as(email);
    const { token } = await createKey(creator, { name: 'admin key', kind: 'secret', permissions: ['projects:read', 'projects:create'] });
    expect((await bearer(h, 'POST', `/v1/orgs/${acme}/projects`, token, { payload: { name: 'by key' } })).statusCode).toBe(201);

    const owner = await as(h.user('acme', 'owner').email);
    expect((await owner.call('PATCH', `/api/orgs/${acme}/members/${id}`, { role: 'viewer' })).statusCode).toBe(204);
    expect((await bearer(h, 'POST', `/v1/orgs/${acme}/projects`, token, { payload: { name: 'denied' } })).statusCode).toBe(403);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, token)).statusCode).toBe(200);

    expect((await owner.call('DELETE', `/api/orgs/${acme}/members/${id}`)).statusCode).toBe(204);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, token)).statusCode).toBe(401);
    await h.t.owner.query("insert into memberships (org_id, user_id, role, created_at) values ($1, $2, 'admin', now() + interval '1 second')", [acme, id]);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, token)).statusCode).toBe(401);
  });

  // review R4 finding 4
  it('a key never carries an org-wide permission its creator cannot hold while restricted to projects', async () => {
    const id = crypto.randomUUID();
    const email = `keys-scope-${id.slice(0, 8)}@example.test`;
    const role = (await admin.call('POST', `/api/orgs/${acme}/roles`, { name: `key-auditor-${id.slice(0, 6)}`, permissions: ['projects:read', 'audit:read', 'keys:own'] }))
      .json<{ id: string }>().id;
    await h.insertUser({ id, email, name: 'Key creator' });
    await h.t.owner.query("insert into memberships (org_id, user_id, role, custom_role_id) values ($1, $2, 'custom', $3)", [acme, id, role]);
    const creator = await as(email);
    // Made while unrestricted: the key reads the trail.
    const { token } = await createKey(creator, { name: 'trail reader', kind: 'secret', permissions: ['projects:read', 'audit:read'] });
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/audit`, token)).statusCode).toBe(200);

    // Restricted afterwards (by hand: the role would be refused through the API), the key loses it at once.
    await h.t.owner.query('update memberships set restricted = true where org_id = $1 and user_id = $2', [acme, id]);
    await h.t.owner.query('insert into project_access (org_id, project_id, user_id) values ($1, $2, $3)', [acme, projectA, id]);
    const denied = await bearer(h, 'GET', `/v1/orgs/${acme}/audit`, token);
    expect(denied.statusCode, denied.body).toBe(403);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, token)).json()).toMatchObject({ permissions: ['org:read', 'projects:read'], projectIds: [projectA] });
    // And a new key cannot be given it.
    const refused = await creator.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: ['audit:read'] });
    expect(refused.statusCode).toBe(403);
    expect(refused.json<Problem>()).toMatchObject({ code: 'privilege_escalation', detail: expect.stringContaining('audit:read') });
  });

  it('binds a project-bound key to its project, in the pipeline and in RLS', async () => {
    const { key, token } = await createKey(admin, { name: 'project A', kind: 'secret', permissions: ['projects:read', 'assets:read', 'assets:write'], projectId: projectA });
    expect(key.projectId).toBe(projectA);
    // Org-wide permissions reach beyond one project: a bound key cannot carry them.
    for (const wide of ['audit:read', 'members:read', 'projects:create', 'projects:delete']) {
      const res = await admin.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'wide', kind: 'secret', permissions: ['projects:read', wide], projectId: projectA });
      expect(res.statusCode, wide).toBe(400);
    }
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects/${projectA}/assets`, token)).statusCode).toBe(200);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects/${projectB}/assets`, token)).statusCode).toBe(404);
    expect((await bearer(h, 'POST', `/v1/orgs/${acme}/projects/${projectB}/assets`, token, { payload: { name: 'x', kind: 'host' } })).statusCode).toBe(404);
    const listed = (await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, token)).json<{ projects: { id: string }[] }>().projects;
    expect(listed.map((p) => p.id)).toEqual([projectA]);

    // The binding the lookup sets is what RLS enforces: in the same transaction, the runtime
    // role sees project A's rows only, whatever the query asks for.
    const hash = (await h.t.owner.query<{ token_hash: string }>('select token_hash from api_keys where id = $1', [key.id]))[0]?.token_hash as string;
    const seen = await h.t.db.withTenant({ orgId: acme, projectIds: null }, async (tx) => {
      await sql`select * from palisade_key_in_org(${hash}, ${acme}::uuid)`.execute(tx);
      const projects = await sql<{ id: string }>`select id from projects`.execute(tx);
      const assets = await sql<{ project_id: string }>`select distinct project_id from assets`.execute(tx);
      return { projects: projects.rows.map((r) => r.id), assets: assets.rows.map((r) => r.project_id) };
    });
    expect(seen).toEqual({ projects: [projectA], assets: [projectA] });

    const restricted = await as(h.user('acme', 'restricted_member').email);
    const refused = await restricted.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'b', kind: 'secret', permissions: ['assets:read'], projectId: projectB });
    expect(refused.statusCode).toBe(404);
    const { token: rtoken } = await createKey(restricted, { name: 'restricted unbound', kind: 'secret', permissions: ['projects:read', 'assets:read'] });
    const rl = (await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, rtoken)).json<{ projects: { id: string }[] }>().projects;
    expect(rl.map((p) => p.id)).toEqual([projectA]);
  });

  it('holds publishable keys to browser-safe permissions and the org\u2019s registered origins', async () => {
    expect((await admin.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'pk', kind: 'publishable', permissions: ['assets:write'] })).statusCode).toBe(400);
    const { token } = await createKey(admin, { name: 'storefront', kind: 'publishable', permissions: ['projects:read', 'org:read'] });
    expect(token).toMatch(/^pal_pk_/);
    const url = `/v1/orgs/${acme}/projects`;
    expect((await bearer(h, 'GET', url, token)).json<Problem>().code).toBe('origin_not_allowed');
    expect((await bearer(h, 'GET', url, token, { headers: { origin: 'https://shop.example' } })).statusCode).toBe(403);
    const owner = await as(h.user('acme', 'owner').email);
    const saved = await owner.call('PATCH', `/api/orgs/${acme}/settings`, { browserOrigins: ['https://shop.example', 'http://localhost:5173'] });
    expect(saved.statusCode, saved.body).toBe(200);
    for (const bad of ['https://*.example', 'javascript:alert(1)', 'https://shop.example/path', 'http://shop.example', 'ftp://x']) {
      expect((await owner.call('PATCH', `/api/orgs/${acme}/settings`, { browserOrigins: [bad] })).statusCode, bad).toBe(400);
    }
    const ok = await bearer(h, 'GET', url, token, { headers: { origin: 'https://shop.example' } });
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.headers['access-control-allow-origin']).toBe('https://shop.example');
    expect(ok.headers['access-control-allow-credentials']).toBeUndefined();
    expect((await bearer(h, 'GET', url, token, { headers: { origin: 'https://evil.example' } })).statusCode).toBe(403);
    expect((await bearer(h, 'GET', url, token, { headers: { origin: 'https://shop.example.evil.example' } })).statusCode).toBe(403);
    // Another org's pages do not count, and a publishable key never writes.
    expect((await bearer(h, 'POST', url, token, { headers: { origin: 'https://shop.example' }, payload: { name: 'x' } })).statusCode).toBe(403);
    // A secret key is not held to origins (servers send none).
    const { token: sk } = await createKey(admin, { name: 'server', kind: 'secret', permissions: ['projects:read'] });
    expect((await bearer(h, 'GET', url, sk, { headers: { origin: 'https://evil.example' } })).statusCode).toBe(200);
  });

  it('names the key in the audit trail and the refusal log', async () => {
    const { key, token } = await createKey(admin, { name: 'auditable', kind: 'secret', permissions: ['projects:read', 'projects:create'] });
    const res = await bearer(h, 'POST', `/v1/orgs/${acme}/projects`, token, { payload: { name: 'audited by key' } });
    expect(res.statusCode).toBe(201);
    const events = await auditSelect<{ actor_type: string; actor_id: string; action: string; details: unknown }>(h, ['actor_type', 'actor_id', 'action', 'details'], `where org_id = $1 and action in ('project.created', 'api_key.created') order by seq desc limit 2`,
      [acme],
    );
    expect(events[0]).toMatchObject({ actor_type: 'api_key', actor_id: key.id, action: 'project.created' });
    expect(events[1]).toMatchObject({ actor_type: 'user', action: 'api_key.created' });
    expect(JSON.stringify(events)).not.toContain(token);
    await bearer(h, 'DELETE', `/v1/orgs/${acme}/projects/${projectA}`, token);
    const denied = await h.t.owner.query<{ actor_type: string; actor_id: string }>(
      "select actor_type, actor_id from audit_events where org_id = $1 and action = 'authz.denied' order by seq desc limit 1",
      [acme],
    );
    expect(denied[0]).toEqual({ actor_type: 'api_key', actor_id: key.id });
    expect(h.logs.join('')).not.toContain(token);
  });

  it('records last use in batches, not per request', async () => {
    const { key, token } = await createKey(admin, { name: 'usage', kind: 'secret', permissions: ['projects:read'] });
    await h.built.services.keyUsage.flush();
    for (let i = 0; i < 5; i++) expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, token)).statusCode).toBe(200);
    const before = await h.t.owner.query<{ last_used_at: Date | null }>('select last_used_at from api_keys where id = $1', [key.id]);
    expect(before[0]?.last_used_at).toBeNull();
    await h.built.services.keyUsage.flush();
    const list = (await admin.call('GET', `/api/orgs/${acme}/api-keys`)).json<{ keys: KeyView[] }>().keys;
    expect(list.find((k) => k.id === key.id)?.lastUsedAt).toBe(h.clock.now().toISOString());
  });

  // Attacker review of issue 15: a key's row may come from the authentication cache, whose
  // last_used_at is not refreshed by the usage write (it decides nothing, migration 040).
  it('writes a key\u2019s last use once per minute even when told an older stored value', async () => {
    const { key } = await createKey(admin, { name: 'usage-cached', kind: 'secret', permissions: ['projects:read'] });
    const usage = createKeyUsage({ db: h.t.db, onError: () => undefined });
    const stored = async () => (await h.t.owner.query<{ last_used_at: Date | null }>('select last_used_at from api_keys where id = $1', [key.id]))[0]?.last_used_at ?? null;
    const t0 = new Date('2026-12-07T10:00:00Z');
    usage.note(acme, key.id, null, t0);
    await usage.flush();
    expect((await stored())?.toISOString()).toBe(t0.toISOString());
    await h.t.owner.query('update api_keys set last_used_at = null where id = $1', [key.id]);
    // The cached row still says "never used": no second write within the minute.
    usage.note(acme, key.id, null, new Date(t0.getTime() + 10_000));
    await usage.flush();
    expect(await stored()).toBeNull();
    const later = new Date(t0.getTime() + 61_000);
    usage.note(acme, key.id, null, later);
    await usage.flush();
    expect((await stored())?.toISOString()).toBe(later.toISOString());
    await usage.close();
  });

  // Owner recovery on the key routes: outside the admin IP allowlist an owner steps up first. The
  // routes declare step_up_required, so the contract check lets the answer through (not a 500).
  it('asks an owner outside the admin IP allowlist to step up before listing or revoking keys', async () => {
    const owner = await as(h.user('acme', 'owner').email);
    const { key } = await createKey(admin, { name: 'outside', kind: 'secret', permissions: ['projects:read'] });
    await h.t.owner.query('update org_settings set admin_ip_allowlist = $2 where org_id = $1', [acme, ['127.0.0.5/32']]);
    h.clock.advance(11 * 60_000);
    try {
      for (const [method, url] of [['GET', `/api/orgs/${acme}/api-keys`], ['DELETE', `/api/orgs/${acme}/api-keys/${key.id}`]] as const) {
        const res = await owner.call(method, url);
        expect(res.statusCode, `${method} ${url}: ${res.body}`).toBe(403);
        expect(res.json<Problem>().code).toBe('step_up_required');
      }
    } finally {
      h.clock.advance(-11 * 60_000);
      await h.t.owner.query('update org_settings set admin_ip_allowlist = $2 where org_id = $1', [acme, []]);
    }
  });
});
