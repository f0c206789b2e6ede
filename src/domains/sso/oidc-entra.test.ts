import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../crypto/index.js';
import { createTestApp, ORIGIN, type Problem, type TestApp } from '../../../test/support/app.js';
import { call, sessionFrom } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { signInAtIdp, startMultiTenantIdp, startOidcProvider, type IdpAccount, type LoopbackIdp, type MultiTenantIdp, type TenantClaims } from '../../../test/support/oidc.js';
import type { SsoTestView } from './responses.js';

const SECRET = 'canary-entra-secret-7c1e9b';
const CALLBACK = '/api/auth/sso/oidc/callback';
const FLOW = '__Host-palisade_sso';
const TENANT_A = '6f2b1c7e-0d3a-4b8e-9a51-2c4d6e8f0a1b';
const TENANT_B = 'a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d';
const TENANT_X = 'ffffffff-1111-4222-8333-444444444444';

/**
 * Multi-tenant Microsoft Entra ID: the `organizations` endpoint's document names the template
 * issuer `…/{tenantid}/v2.0`; an ID token's `iss` must be that template with its own `tid` filled
 * in, and the tenant must be one the connection allows.
 */
describe.each(ENGINES)('OIDC sign-in with multi-tenant Entra ID on %s', (engine) => {
  let h: TestApp;
  let idp: MultiTenantIdp;
  let single: LoopbackIdp;
  let acme: string;
  let domain: string;
  let connection: string;
  let owner: string;
  const accounts = new Map<string, IdpAccount>();
  const tenants = new Map<string, TenantClaims>();
  const clients = [{ client_id: 'palisade', client_secret: SECRET, redirect_uris: [`${ORIGIN}${CALLBACK}`] }];

  /** Someone of `tenant` (its claims as the IdP will sign them). */
  const person = (tenant: TenantClaims): IdpAccount => {
    const sub = `sub-${newId()}`;
    const a = { sub, email: `${sub.slice(4, 16)}@${domain}`, email_verified: true, name: 'Entra User' };
    accounts.set(sub, a);
    tenants.set(sub, tenant);
    return a;
  };
  const flowOf = (res: LightMyRequestResponse) => res.cookies.find((c) => c.name === FLOW)?.value;
  const create = (payload: object) =>
    call(h, 'POST', `/api/orgs/${acme}/sso/connections`, { cookie: owner, payload: { kind: 'oidc', name: 'Entra', clientId: 'palisade', clientSecret: SECRET, ...payload } });

  /** A sign-in through the connection as `who`; `keepIss`: the callback keeps the IdP's `iss` parameter (Entra sends none). */
  async function signIn(who: IdpAccount, keepIss = false): Promise<LightMyRequestResponse> {
    const start = await call(h, 'GET', `/api/auth/sso/start?org=${acme}&connection=${connection}`);
    expect(start.statusCode, start.body).toBe(302);
    const url = await signInAtIdp(String(start.headers.location), who.sub, `${ORIGIN}${CALLBACK}`);
    if (!keepIss) url.searchParams.delete('iss');
    return call(h, 'GET', `${url.pathname}${url.search}`, { cookie: `${FLOW}=${flowOf(start)}` });
  }
  const refused = (res: LightMyRequestResponse) => {
    expect(res.statusCode, res.body).toBe(401);
    expect(res.json<Problem>().code).toBe('sso_failed');
    expect(sessionFrom(res)).toBeFalsy();
    return res.json<Problem>().detail ?? '';
  };

  beforeAll(async () => {
    idp = await startMultiTenantIdp({ clients, accounts, tenantOf: (sub) => tenants.get(sub) ?? {} });
    single = await startOidcProvider({ clients });
    h = await createTestApp(engine, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    acme = h.orgId('acme');
    domain = `entra-${newId().slice(0, 8)}.example`;
    const ownerId = await h.userId(h.user('acme', 'owner').email);
    await h.t.owner.query('insert into verified_domains (domain, org_id) values ($1, $2)', [domain, acme]);
    await h.t.owner.query('insert into org_domains (org_id, id, domain, record_value, created_by, created_at, verified_at) values ($1, $2, $3, $4, $5, now(), now())', [
      acme, newId(), domain, 'palisade-verification=test', ownerId,
    ]);
    owner = await h.cookieFor(h.user('acme', 'owner').email);
    const c = await create({ issuer: idp.issuer, allowedTenants: [TENANT_A, TENANT_B.toUpperCase()], jitRole: 'member' });
    expect(c.statusCode, c.body).toBe(201);
    expect(c.json<{ oidc: { allowedTenants: string[] } }>().oidc.allowedTenants).toEqual([TENANT_A, TENANT_B]);
    connection = c.json<{ id: string }>().id;
    const on = await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${connection}`, { cookie: owner, payload: { enabled: true } });
    expect(on.statusCode, on.body).toBe(200);
  });
  afterAll(async () => {
    await h?.close();
    await idp?.close();
    await single?.close();
  });

  it('refuses a multi-tenant issuer without a list of tenants, and a list for a one-tenant issuer', async () => {
    const open = await create({ issuer: idp.issuer });
    expect(open.statusCode, open.body).toBe(400);
    expect(open.json<Problem>().detail).toMatch(/multi-tenant.*allowedTenants/);
    const misplaced = await create({ issuer: single.issuer, allowedTenants: [TENANT_A] });
    expect(misplaced.statusCode, misplaced.body).toBe(400);
    expect(misplaced.json<Problem>().detail).toMatch(/multi-tenant issuer/);
    const notGuid = await create({ issuer: idp.issuer, allowedTenants: ['contoso.onmicrosoft.com'] });
    expect(notGuid.statusCode, notGuid.body).toBe(400);
    // A one-tenant connection does not become a multi-tenant one by a PATCH.
    const one = await create({ issuer: single.issuer });
    expect(one.statusCode, one.body).toBe(201);
    const patched = await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${one.json<{ id: string }>().id}`, { cookie: owner, payload: { allowedTenants: [TENANT_A] } });
    expect(patched.statusCode, patched.body).toBe(400);
  });

  it('signs in a user of an allowed tenant, the identity keyed by the tenant\u2019s own issuer', async () => {
    const ada = person({ tid: TENANT_A });
    const res = await signIn(ada);
    expect(res.statusCode, res.body).toBe(302);
    const me = await call(h, 'GET', '/api/me', { cookie: sessionFrom(res) as string });
    expect(me.json<{ user: { email: string } }>().user.email).toBe(ada.email);
    const links = await h.t.owner.query<{ issuer: string }>('select issuer from sso_identities where subject = $1', [ada.sub]);
    expect(links).toEqual([{ issuer: idp.tenantIssuer(TENANT_A) }]);
    // The other allowed tenant too.
    expect((await signIn(person({ tid: TENANT_B }))).statusCode).toBe(302);
  });

  it('refuses a tenant not in the list, an iss that does not match tid, a forged signature, a missing or malformed tid, and the bare template', async () => {
    const cases: [TenantClaims, RegExp][] = [
      [{ tid: TENANT_X }, /tenant this connection does not allow/],
      // Signed by the provider's key for an allowed tenant's tid, issued as another (allowed) tenant.
      [{ tid: TENANT_A, iss: idp.tenantIssuer(TENANT_B) }, /issuer/],
      [{ tid: TENANT_A, iss: idp.template }, /issuer/],
      // Right tenant, right issuer, not signed by the provider's key: the second pass checks the signature.
      [{ tid: TENANT_A, forged: true }, /not signed by the identity provider/],
      [{ iss: idp.tenantIssuer(TENANT_A) }, /names no tenant/],
      [{ tid: 'organizations', iss: idp.tenantIssuer('organizations') }, /not an Entra tenant id/],
      [{ tid: TENANT_A.toUpperCase(), iss: idp.tenantIssuer(TENANT_A.toUpperCase()) }, /not an Entra tenant id/],
    ];
    for (const [tenant, why] of cases) {
      const who = person(tenant);
      expect(refused(await signIn(who))).toMatch(why);
      expect(await h.hasUser(who.email!)).toBe(false);
    }
    const [event] = await h.t.owner.query<{ result: string }>("select result from audit_events where action = 'auth.sso_failed' and target_id = $1 order by at desc, seq desc limit 1", [connection]);
    expect(event?.result).toBe('failure');
  });

  it('refuses an iss response parameter that is not the tenant\u2019s issuer', async () => {
    // oidc-provider names its own issuer in the parameter (Entra sends none): not the tenant's.
    expect(refused(await signIn(person({ tid: TENANT_A }), true))).toMatch(/answer is not valid/);
  });

  it('tests the connection like a sign-in: the tenant\u2019s issuer in the claims, a refused tenant as a failed run', async () => {
    const run = async (who: IdpAccount) => {
      const started = await call(h, 'POST', `/api/orgs/${acme}/sso/connections/${connection}/test`, { cookie: owner, payload: {} });
      expect(started.statusCode, started.body).toBe(201);
      const { testId, location } = started.json<{ testId: string; location: string }>();
      const url = await signInAtIdp(location, who.sub, `${ORIGIN}${CALLBACK}`);
      url.searchParams.delete('iss');
      expect((await call(h, 'GET', `${url.pathname}${url.search}`, { cookie: `${FLOW}=${flowOf(started)}` })).statusCode).toBe(302);
      return (await call(h, 'GET', `/api/orgs/${acme}/sso/connections/${connection}/tests/${testId}`, { cookie: owner })).json<SsoTestView>();
    };
    expect((await run(person({ tid: TENANT_B }))).claims?.issuer).toBe(idp.tenantIssuer(TENANT_B));
    const outsider = await run(person({ tid: TENANT_X }));
    expect(outsider.status).toBe('failed');
    expect(outsider.reason).toMatch(/does not allow/);
  });

  it('narrows the list by PATCH: a tenant removed signs in no more', async () => {
    const fresh = await h.cookieFor(h.user('acme', 'owner').email);
    const patched = await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${connection}`, { cookie: fresh, payload: { allowedTenants: [TENANT_A] } });
    expect(patched.statusCode, patched.body).toBe(200);
    expect(refused(await signIn(person({ tid: TENANT_B })))).toMatch(/does not allow/);
    expect((await signIn(person({ tid: TENANT_A }))).statusCode).toBe(302);
  });
});
