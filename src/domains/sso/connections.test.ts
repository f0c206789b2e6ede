import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type Problem, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { startOidcProvider, type LoopbackIdp } from '../../../test/support/oidc.js';
import { auditSelect } from '../../../test/support/evidence.js';

interface Connection {
  id: string;
  kind: 'oidc';
  name: string;
  enabled: boolean;
  oidc: { issuer: string; clientId: string; scopes: string[]; clientSecretSet: boolean; redirectUri: string };
}

const SECRET = 'canary-client-secret-7f3a9c1e5b';
const ROTATED = 'canary-rotated-secret-2d8e4f6a0c';

/** OIDC connections: the issuer is discovered through the guarded egress before anything is stored. */
describe.each(ENGINES)('OIDC connections on %s', (engine) => {
  let h: TestApp;
  let idp: LoopbackIdp;
  let html: http.Server;
  let htmlUrl: string;
  let acme: string;
  let globex: string;
  let owner: string;

  const call = (cookie: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object): Promise<LightMyRequestResponse> =>
    h.built.app.inject({ method, url, headers: { cookie, origin: ORIGIN }, ...(payload === undefined ? {} : { payload }) });
  const create = (cookie: string, org: string, body: Record<string, unknown>) =>
    call(cookie, 'POST', `/api/orgs/${org}/sso/connections`, { kind: 'oidc', name: 'Entra ID', clientId: 'palisade', clientSecret: SECRET, ...body });
  const rowCount = async () => (await h.t.owner.query<{ n: number }>('select count(*)::int as n from sso_connections'))[0]?.n;

  beforeAll(async () => {
    idp = await startOidcProvider({ clients: [{ client_id: 'palisade', client_secret: SECRET, redirect_uris: [`${ORIGIN}/api/auth/sso/oidc/callback`] }] });
    html = http.createServer((_req, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>not an IdP</html>'));
    await new Promise<void>((ready) => html.listen(0, '127.0.0.1', ready));
    htmlUrl = `http://127.0.0.1:${(html.address() as AddressInfo).port}`;
    h = await createTestApp(engine, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    owner = await h.cookieFor(h.user('acme', 'owner').email);
  });
  afterAll(async () => {
    await h?.close();
    await idp?.close();
    html?.closeAllConnections();
    html?.close();
  });

  it('adds a connection after reading the issuer\u2019s discovery document, its secret sealed', async () => {
    const res = await create(owner, acme, { issuer: idp.issuer });
    expect(res.statusCode, res.body).toBe(201);
    const c = res.json<Connection>();
    expect(c).toMatchObject({
      kind: 'oidc', name: 'Entra ID', enabled: false,
      oidc: { issuer: idp.issuer, clientId: 'palisade', scopes: ['openid', 'email', 'profile'], clientSecretSet: true, redirectUri: `${ORIGIN}/api/auth/sso/oidc/callback` },
    });
    expect(res.body).not.toContain(SECRET);
    const [row] = await h.t.owner.query<{ secret_sealed: string; settings: unknown }>('select secret_sealed, settings from sso_connections where id = $1', [c.id]);
    expect(row?.secret_sealed).not.toContain(SECRET);
    expect(JSON.stringify(row?.settings)).not.toContain(SECRET);
    const opened = await h.t.db.withTenant({ orgId: acme, projectIds: null }, (tx) =>
      h.built.services.sealer.open(tx, { scope: acme, table: 'sso_connections', column: 'secret_sealed', row: c.id }, row?.secret_sealed ?? ''));
    expect(opened).toBe(SECRET);
    const audit = await auditSelect<{ details: unknown }>(h, ['details'], `where org_id = $1 and action = 'sso.connection_created' and target_id = $2`, [acme, c.id]);
    expect(audit).toHaveLength(1);
    expect(JSON.stringify(audit)).not.toContain(SECRET);
    expect(h.logs.join('')).not.toContain(SECRET);

    const list = await call(owner, 'GET', `/api/orgs/${acme}/sso/connections`);
    expect(list.json<{ connections: Connection[] }>().connections.map((x) => x.id)).toContain(c.id);
    expect(list.body).not.toContain(SECRET);
  });

  it('refuses an issuer it cannot discover, saying why, and stores nothing', async () => {
    const before = await rowCount();
    const cases: [string, RegExp][] = [
      ['http://10.0.0.1/', /destination refused: private/],
      ['http://169.254.169.254/', /destination refused: (metadata|link-local)/],
      ['http://127.0.0.1:1/', /connection refused/],
      [`${idp.issuer}/tenant-b`, /did not answer 200|discovery failed/],
      [htmlUrl, /did not answer 200 with a JSON document|not JSON|not valid/],
      ['not-a-url', /not a URL/],
      ['ftp://example.com/', /must use https/],
    ];
    for (const [issuer, why] of cases) {
      const res = await create(owner, acme, { issuer });
      expect(res.statusCode, `${issuer}: ${res.body}`).toBe(400);
      const p = res.json<Problem>();
      expect(p.code, issuer).toBe('validation_failed');
      expect(p.detail, issuer).toMatch(why);
      expect(p.detail, issuer).not.toContain('<html>');
    }
    expect(await rowCount()).toBe(before);
  });

  it('refuses plain http issuers where loopback egress is not allowed', async () => {
    const strict = await createTestApp(engine);
    try {
      const cookie = await strict.cookieFor(strict.user('acme', 'owner').email);
      const res = await strict.built.app.inject({
        method: 'POST', url: `/api/orgs/${strict.orgId('acme')}/sso/connections`, headers: { cookie, origin: ORIGIN },
        payload: { kind: 'oidc', name: 'IdP', issuer: idp.issuer, clientId: 'palisade', clientSecret: SECRET },
      });
      expect(res.statusCode).toBe(400);
      expect(res.json<Problem>().detail).toMatch(/must use https/);
    } finally {
      await strict.close();
    }
  });

  it('enables, renames and rotates the secret (re-sealed), auditing which fields changed', async () => {
    const c = (await create(owner, acme, { issuer: idp.issuer, scopes: ['openid', 'email', 'groups'] })).json<Connection>();
    const sealed = async () => (await h.t.owner.query<{ s: string }>('select secret_sealed as s from sso_connections where id = $1', [c.id]))[0]?.s;
    const first = await sealed();
    const res = await call(owner, 'PATCH', `/api/orgs/${acme}/sso/connections/${c.id}`, { enabled: true, name: 'Okta', clientSecret: ROTATED });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<Connection>()).toMatchObject({ enabled: true, name: 'Okta', oidc: { scopes: ['openid', 'email', 'groups'], clientSecretSet: true } });
    expect(await sealed()).not.toBe(first);
    const [ev] = await auditSelect<{ details: unknown }>(h, ['details'], `where org_id = $1 and action = 'sso.connection_updated' and target_id = $2`, [acme, c.id]);
    expect(ev?.details).toEqual({ changed: ['clientSecret', 'enabled', 'name'], enabled: true, name: 'Okta' });
    expect(JSON.stringify(ev)).not.toContain(ROTATED);

    expect((await call(owner, 'PATCH', `/api/orgs/${acme}/sso/connections/${c.id}`, {})).statusCode).toBe(400);
    expect((await call(owner, 'PATCH', `/api/orgs/${acme}/sso/connections/${c.id}`, { scopes: ['email'] })).json<Problem>().code).toBe('validation_failed');
    expect((await call(owner, 'DELETE', `/api/orgs/${acme}/sso/connections/${c.id}`)).statusCode).toBe(204);
    expect(await h.t.owner.query('select 1 from sso_connections where id = $1', [c.id])).toEqual([]);
  });

  it('hides another org\u2019s connection (404) and refuses roles without sso:manage', async () => {
    const c = (await create(owner, acme, { issuer: idp.issuer })).json<Connection>();
    const globexOwner = await h.cookieFor(h.user('globex', 'owner').email);
    for (const org of [globex, acme]) {
      const base = `/api/orgs/${org}/sso/connections/${c.id}`;
      expect((await call(globexOwner, 'GET', base)).statusCode, base).toBe(404);
      expect((await call(globexOwner, 'PATCH', base, { enabled: true })).statusCode, base).toBe(404);
      expect((await call(globexOwner, 'DELETE', base)).statusCode, base).toBe(404);
    }
    const member = await h.cookieFor(h.user('acme', 'member').email);
    expect((await call(member, 'GET', `/api/orgs/${acme}/sso/connections`)).statusCode).toBe(403);
    expect((await create(member, acme, { issuer: idp.issuer })).statusCode).toBe(403);
    const still = (await call(owner, 'GET', `/api/orgs/${acme}/sso/connections/${c.id}`)).json<Connection>();
    expect(still.enabled).toBe(false);
  });
});
