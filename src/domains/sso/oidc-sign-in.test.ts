import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../crypto/index.js';
import { createTestApp, ORIGIN, testConfig, type Problem, type TestApp } from '../../../test/support/app.js';
import { call, sessionFrom } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { enrollTotp, nextCode, verifyMfa } from '../../../test/support/mfa.js';
import { forgedCopy, rsaSigningKey, signInAtIdp, unsignedCopy, startOidcProvider, type IdpAccount, type LoopbackIdp } from '../../../test/support/oidc.js';
import { passwordUser } from '../../../test/support/users.js';
import { createFlowSealer, type FlowState } from './flow-state.js';
import { personColumns } from '../identity/people.js';
import { auditSelect } from '../../../test/support/evidence.js';

const SECRET = 'canary-sso-client-secret-91c2e7';
const OTHER_SECRET = 'canary-sso-other-secret-44ab10';
const CALLBACK = '/api/auth/sso/oidc/callback';
const FLOW = '__Host-palisade_sso';
/** Short enough to outlive within a flow's ten minutes, long enough for every other case. */
const ID_TOKEN_TTL = 120;

interface Me {
  user: { id: string; email: string };
  orgs: { id: string; role: string }[];
}

/** OIDC sign-in against a real OpenID Provider on loopback, every step of the flow attacked. */
describe.each(ENGINES)('OIDC single sign-on on %s', (engine) => {
  let h: TestApp;
  let idp: LoopbackIdp;
  let acme: string;
  let globex: string;
  let domain: string;
  let connection: string;
  let otherClientConnection: string;
  let globexConnection: string;
  const accounts = new Map<string, IdpAccount>();
  const flows = createFlowSealer(testConfig().sessionSecret);
  const clients = [
    { client_id: 'palisade', client_secret: SECRET, redirect_uris: [`${ORIGIN}${CALLBACK}`] },
    { client_id: 'other', client_secret: OTHER_SECRET, redirect_uris: [`${ORIGIN}${CALLBACK}`] },
    { client_id: 'unsigned', client_secret: SECRET, redirect_uris: [`${ORIGIN}${CALLBACK}`] },
    { client_id: 'symmetric', client_secret: SECRET, redirect_uris: [`${ORIGIN}${CALLBACK}`], id_token_signed_response_alg: 'HS256' as const },
    { client_id: 'forged', client_secret: SECRET, redirect_uris: [`${ORIGIN}${CALLBACK}`] },
  ];
  const keys = [rsaSigningKey('k1')];
  const tamperIdToken = [{ clientId: 'unsigned', rewrite: unsignedCopy }, { clientId: 'forged', rewrite: forgedCopy }];

  /** An IdP account; its email in the org's verified domain unless given. */
  const person = (over: Partial<IdpAccount> = {}): IdpAccount => {
    const sub = `sub-${newId()}`;
    const a = { sub, email: `${sub.slice(4, 16)}@${domain}`, email_verified: true, name: 'Ada SSO', ...over };
    accounts.set(sub, a);
    return a;
  };
  /** Moves an account to another address, sealed and indexed as the app writes one (migration 039). */
  const setEmail = async (userId: string, email: string) => {
    const name = (await h.person(userId))?.name ?? '';
    const c = await h.t.db.withSystem('test: change an address', (tx) => personColumns(h.built.services.sealer, tx, userId, { email, name }));
    await h.t.owner.query('update users set email_sealed = $1, name_sealed = $2, email_index = $3, email_domain_index = $4 where id = $5',
      [c.email_sealed, c.name_sealed, c.email_index, c.email_domain_index, userId]);
  };
  const start = (query: string) => call(h, 'GET', `/api/auth/sso/start?${query}`);
  const flowOf = (res: LightMyRequestResponse) => res.cookies.find((c) => c.name === FLOW)?.value;
  const back = (url: URL, flow: string | undefined) =>
    call(h, 'GET', `${url.pathname}${url.search}`, flow === undefined ? {} : { cookie: `${FLOW}=${flow}` });

  /** Start → IdP (signed in as `who`) → the callback URL and the browser's flow cookie, not yet redeemed. */
  async function atIdp(who: IdpAccount, query = `email=${encodeURIComponent(who.email ?? '')}`): Promise<{ url: URL; flow: string }> {
    const res = await start(query);
    expect(res.statusCode, res.body).toBe(302);
    const flow = flowOf(res);
    expect(flow).toBeTruthy();
    return { url: await signInAtIdp(String(res.headers.location), who.sub, `${ORIGIN}${CALLBACK}`), flow: flow as string };
  }
  async function signIn(who: IdpAccount, query?: string): Promise<LightMyRequestResponse> {
    const { url, flow } = await atIdp(who, query);
    return back(url, flow);
  }
  const me = async (res: LightMyRequestResponse): Promise<Me> => {
    const cookie = sessionFrom(res);
    expect(cookie, res.body).toBeTruthy();
    const r = await call(h, 'GET', '/api/me', { cookie: cookie as string });
    expect(r.statusCode, r.body).toBe(200);
    return r.json<Me>();
  };
  const reseal = (flow: string, change: Partial<FlowState>) => {
    const open = flows.open(flow, h.clock.now().getTime());
    if (!open) throw new Error('flow cookie did not open');
    return flows.seal({ ...open, ...change });
  };
  const refused = (res: LightMyRequestResponse) => {
    expect(res.statusCode, res.body).toBe(401);
    expect(res.json<Problem>().code).toBe('sso_failed');
    expect(sessionFrom(res)).toBeFalsy();
    return res.json<Problem>().detail ?? '';
  };
  const identities = async (sub: string) => h.t.owner.query<{ user_id: string }>('select user_id from sso_identities where subject = $1', [sub]);

  async function connect(org: string, clientId: string, secret: string, policy: object): Promise<string> {
    // An email address routes to the org's oldest enabled connection: creation times differ.
    h.clock.advance(1000);
    const owner = await h.cookieFor(h.user(org === acme ? 'acme' : 'globex', 'owner').email);
    const c = await call(h, 'POST', `/api/orgs/${org}/sso/connections`, { cookie: owner, payload: { kind: 'oidc', name: 'IdP', issuer: idp.issuer, clientId, clientSecret: secret, ...policy } });
    expect(c.statusCode, c.body).toBe(201);
    const id = c.json<{ id: string }>().id;
    const on = await call(h, 'PATCH', `/api/orgs/${org}/sso/connections/${id}`, { cookie: owner, payload: { enabled: true } });
    expect(on.statusCode, on.body).toBe(200);
    return id;
  }

  beforeAll(async () => {
    idp = await startOidcProvider({ clients, accounts, keys, idTokenTtl: ID_TOKEN_TTL, tamperIdToken });
    h = await createTestApp(engine, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    domain = `sso-${newId().slice(0, 8)}.example`;
    // The domain's DNS proof is domains.test.ts's subject; here it is simply on record as verified.
    const ownerId = await h.userId(h.user('acme', 'owner').email);
    await h.t.owner.query('insert into org_domains (org_id, id, domain, record_value, created_by, created_at, verified_at) values ($1, $2, $3, $4, $5, now(), now())', [
      acme, newId(), domain, 'palisade-verification=test', ownerId,
    ]);
    await h.t.owner.query('insert into verified_domains (domain, org_id) values ($1, $2)', [domain, acme]);
    connection = await connect(acme, 'palisade', SECRET, { jitRole: 'member' });
    otherClientConnection = await connect(acme, 'other', OTHER_SECRET, {});
    globexConnection = await connect(globex, 'other', OTHER_SECRET, { jitRole: 'member' });
  });
  afterAll(async () => {
    await h?.close();
    await idp?.close();
  });

  it('creates a member at the first sign-in in the verified domain, and finds them by subject after', async () => {
    const ada = person();
    const first = await signIn(ada);
    expect(first.statusCode, first.body).toBe(302);
    expect(first.headers.location).toBe('/');
    expect(first.headers['cache-control']).toBe('no-store');
    // The flow cookie is spent whatever the outcome.
    expect(first.cookies.find((c) => c.name === FLOW)?.value).toBe('');
    const who = await me(first);
    expect(who.user.email).toBe(ada.email);
    expect(who.orgs).toEqual([expect.objectContaining({ id: acme, role: 'member' })]);
    const [s] = await h.t.owner.query<{ auth_method: string; sso_org_id: string; sso_connection_id: string; mfa_verified: boolean; stepped_up_at: Date | null }>(
      'select auth_method, sso_org_id, sso_connection_id, mfa_verified, stepped_up_at from sessions where user_id = $1', [who.user.id]);
    expect(s).toEqual({ auth_method: 'sso', sso_org_id: acme, sso_connection_id: connection, mfa_verified: false, stepped_up_at: null });
    const actions = await h.t.owner.query<{ action: string }>("select action from audit_events where target_id = $1 or (action = 'auth.login' and actor_id = $1) order by at, seq", [who.user.id]);
    expect(actions.map((a) => a.action)).toEqual(expect.arrayContaining(['sso.member_provisioned', 'sso.identity_linked', 'auth.login']));

    const again = await signIn(ada);
    expect((await me(again)).user.id).toBe(who.user.id);
    expect(await identities(ada.sub)).toHaveLength(1);
    // Routing is by subject: the IdP now saying another address changes nothing about who it is.
    ada.email = `renamed-${ada.email}`;
    expect((await me(await signIn(ada, `org=${acme}&connection=${connection}`))).user.id).toBe(who.user.id);
  });

  it('links an existing verified account in the domain, never an unverified one', async () => {
    const existing = await passwordUser(h);
    const email = `existing-${newId().slice(0, 6)}@${domain}`;
    await setEmail(existing.id, email);
    expect((await me(await signIn(person({ email })))).user.id).toBe(existing.id);

    // Registered by someone (perhaps not the mailbox's holder) and never verified: not linked.
    const unverified = await passwordUser(h);
    const email2 = `unverified-${newId().slice(0, 6)}@${domain}`;
    await setEmail(unverified.id, email2);
    await h.t.owner.query('update users set email_verified_at = null where id = $1', [unverified.id]);
    const sub = person({ email: email2 });
    expect(refused(await signIn(sub))).toContain('not verified');
    expect(await identities(sub.sub)).toEqual([]);
  });

  it('lets no IdP take over an account by asserting its email address', async () => {
    const victim = await passwordUser(h, acme);
    // An address outside every domain the org verified (the demo users' own domain).
    const outside = person({ email: victim.email });
    expect(refused(await signIn(outside, `org=${acme}&connection=${connection}`))).toContain('not in a domain');
    // Another org's IdP asserting an address in acme's verified domain.
    const inAcme = `target-${newId().slice(0, 6)}@${domain}`;
    const target = await passwordUser(h, acme);
    await setEmail(target.id, inAcme);
    expect(refused(await signIn(person({ email: inAcme }), `org=${globex}&connection=${globexConnection}`))).toContain('not in a domain');
    // Not verified at the IdP, or no verification claim at all.
    expect(refused(await signIn(person({ email: inAcme, email_verified: false })))).toContain('verified email');
    const noClaim = person({ email: inAcme });
    delete noClaim.email_verified;
    expect(refused(await signIn(noClaim))).toContain('verified email');
    expect(await h.t.owner.query("select 1 from sso_identities where user_id in ($1, $2)", [victim.id, target.id])).toEqual([]);
    const failures = await h.t.owner.query<{ n: number }>("select count(*)::int as n from audit_events where action = 'auth.sso_failed' and org_id in ($1, $2)", [acme, globex]);
    expect(failures[0]?.n).toBeGreaterThanOrEqual(4);
  });

  it('refuses a callback without this browser\u2019s flow, with a changed state, issuer or code, or replayed', async () => {
    const ada = person();
    const { url, flow } = await atIdp(ada);
    // Another browser (no flow cookie), a forged or truncated one.
    expect(refused(await back(url, undefined))).toContain('no single sign-on in progress');
    expect(refused(await back(url, `${flow.slice(0, -2)}AA`))).toContain('no single sign-on in progress');
    const wrongState = new URL(url);
    wrongState.searchParams.set('state', 'x'.repeat(43));
    refused(await back(wrongState, flow));
    // RFC 9207: the authorization response names its issuer.
    const wrongIss = new URL(url);
    wrongIss.searchParams.set('iss', 'https://evil.example');
    refused(await back(wrongIss, flow));
    const noCode = new URL(url);
    noCode.searchParams.delete('code');
    refused(await back(noCode, flow));
    // The untouched callback still works once (the refusals above spent nothing at the IdP)...
    const ok = await back(url, flow);
    expect(ok.statusCode, ok.body).toBe(302);
    // ...and a replay with the same cookie finds the code spent at the IdP.
    expect(refused(await back(url, flow))).toMatch(/refused the sign-in|could not be completed/);
  });

  it('refuses a PKCE verifier, nonce or expiry that is not the flow\u2019s, and a code issued to another client', async () => {
    const ada = person();
    for (const change of [{ verifier: 'v'.repeat(64) }, { nonce: 'n'.repeat(43) }, { connectionId: otherClientConnection }]) {
      const { url, flow } = await atIdp(ada);
      refused(await back(url, reseal(flow, change)));
    }
    const { url, flow } = await atIdp(ada);
    expect(refused(await back(url, reseal(flow, { expiresAt: h.clock.now().getTime() - 1 })))).toContain('no single sign-on in progress');
  });

  it('refuses an expired ID token, an unsigned one (alg none), one signed with the client secret (HS256) and one signed RS256 by another key', async () => {
    const ada = person();
    const { url, flow } = await atIdp(ada);
    // Past the token's lifetime and openid-client's 30 s tolerance, inside the flow's ten minutes.
    h.clock.advance((ID_TOKEN_TTL + 60) * 1000);
    expect(refused(await back(url, flow))).toContain('expired');
    // Back to the IdP's time: the server's clock judges every later token too.
    h.clock.advance(-(ID_TOKEN_TTL + 60) * 1000);
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    // forged: claims and kid intact, RS256 by a key not in the IdP's JWKS. openid-client checks no
    // signature of a token endpoint answer unless asked (enableNonRepudiationChecks): this was accepted.
    for (const clientId of ['unsigned', 'symmetric', 'forged']) {
      const c = await call(h, 'POST', `/api/orgs/${acme}/sso/connections`, { cookie: owner, payload: { kind: 'oidc', name: clientId, issuer: idp.issuer, clientId, clientSecret: SECRET } });
      expect(c.statusCode, c.body).toBe(201);
      const id = c.json<{ id: string }>().id;
      expect((await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${id}`, { cookie: owner, payload: { enabled: true } })).statusCode).toBe(200);
      const bob = person();
      const res = await signIn(bob, `org=${acme}&connection=${id}`);
      expect(refused(res), clientId).toMatch(clientId === 'forged' ? /not signed by the identity provider/ : /not signed by the identity provider|not valid/);
      expect(await identities(bob.sub)).toHaveLength(0);
    }
  });

  it('accepts ID tokens signed with a key the IdP rotated to since the last sign-in', async () => {
    const ada = person();
    expect((await signIn(ada)).statusCode).toBe(302);
    const port = Number(new URL(idp.issuer).port);
    await idp.close();
    idp = await startOidcProvider({ clients, accounts, keys: [rsaSigningKey('k2'), ...keys], port, idTokenTtl: ID_TOKEN_TTL, tamperIdToken });
    const after = await signIn(ada);
    expect(after.statusCode, after.body).toBe(302);
    expect(sessionFrom(after)).toBeTruthy();
  });

  it('asks an account with a second factor for it after the IdP, through a one-minute handover code', async () => {
    const user = await passwordUser(h, acme);
    const email = `mfa-${newId().slice(0, 6)}@${domain}`;
    await setEmail(user.id, email);
    const totp = await enrollTotp(h, { ...user, email });
    const atIdpAs = person({ email });
    const res = await signIn(atIdpAs, `email=${encodeURIComponent(email)}&returnTo=${encodeURIComponent('/console?tab=1')}`);
    expect(res.statusCode, res.body).toBe(302);
    expect(sessionFrom(res)).toBeFalsy();
    const landing = new URL(String(res.headers.location), ORIGIN);
    expect(landing.pathname).toBe('/console');
    expect(landing.searchParams.get('tab')).toBe('1');
    const code = landing.searchParams.get('sso_handover') ?? '';
    expect(code).toMatch(/^pal_sho_[A-Za-z0-9_-]{43}$/);
    const [stored] = await h.t.owner.query<{ token_hash: string }>('select token_hash from sso_handovers where user_id = $1', [user.id]);
    expect(stored?.token_hash).not.toContain(code.slice(8));

    const handover = await call(h, 'POST', '/api/auth/sso/handover', { payload: { code } });
    expect(handover.statusCode, handover.body).toBe(200);
    const pending = handover.json<{ mfaRequired: true; mfaToken: string; methods: string[] }>();
    expect(pending.methods).toContain('totp');
    expect((await call(h, 'POST', '/api/auth/sso/handover', { payload: { code } })).json<Problem>().code).toBe('token_invalid');
    const done = await verifyMfa(h, pending.mfaToken, { code: nextCode(h, totp.secret) });
    expect(done.statusCode, done.body).toBe(200);
    const cookie = sessionFrom(done) as string;
    const [s] = await h.t.owner.query<{ auth_method: string; sso_connection_id: string; mfa_verified: boolean }>(
      'select auth_method, sso_connection_id, mfa_verified from sessions where user_id = $1 and revoked_at is null order by created_at desc limit 1', [user.id]);
    expect(s).toEqual({ auth_method: 'sso', sso_connection_id: connection, mfa_verified: true });
    expect((await call(h, 'GET', '/api/me', { cookie })).statusCode).toBe(200);

    // A handover code is good for one minute.
    const late = new URL(String((await signIn(atIdpAs)).headers.location), ORIGIN).searchParams.get('sso_handover') ?? '';
    h.clock.advance(61_000);
    expect((await call(h, 'POST', '/api/auth/sso/handover', { payload: { code: late } })).json<Problem>().code).toBe('token_invalid');
  });

  it('routes only to enabled connections and verified domains, and lands only on this origin', async () => {
    const unknown = await start(`email=${encodeURIComponent('someone@not-verified.example')}`);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json<Problem>().code).toBe('not_found');
    expect((await start(`org=${acme}&connection=${newId()}`)).statusCode).toBe(404);
    // Another org's connection id under this org.
    expect((await start(`org=${acme}&connection=${globexConnection}`)).statusCode).toBe(404);
    expect((await start('returnTo=/x')).statusCode).toBe(400);
    expect((await start(`email=${'a'.repeat(300)}@x.example`)).statusCode).toBe(400);

    const res = await start(`email=${encodeURIComponent(`x@${domain}`)}`);
    const auth = new URL(String(res.headers.location));
    expect(auth.origin).toBe(idp.issuer);
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
    expect(auth.searchParams.get('redirect_uri')).toBe(`${ORIGIN}${CALLBACK}`);
    expect(auth.searchParams.get('client_id')).toBe('palisade');
    expect(auth.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const cookie = res.cookies.find((c) => c.name === FLOW);
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax', path: '/', maxAge: 600 });
    // The verifier travels sealed: neither it nor the state can be read off the cookie.
    expect(cookie?.value).not.toContain(auth.searchParams.get('state') ?? '-');

    for (const returnTo of ['//evil.example/x', 'https://evil.example', '/\\evil.example', '/ok\u0000']) {
      const ada = person();
      const r = await signIn(ada, `email=${encodeURIComponent(ada.email ?? '')}&returnTo=${encodeURIComponent(returnTo)}`);
      expect(r.headers.location, returnTo).toBe('/');
    }

    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${otherClientConnection}`, { cookie: owner, payload: { enabled: false } });
    expect((await start(`org=${acme}&connection=${otherClientConnection}`)).statusCode).toBe(404);
  });

  it('maps IdP groups to roles and projects at every sign-in: a removed group demotes, no group at all removes', async () => {
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const project = async (name: string) => {
      const r = await call(h, 'POST', `/api/orgs/${acme}/projects`, { cookie: owner, payload: { name } });
      expect(r.statusCode, r.body).toBe(201);
      return r.json<{ id: string }>().id;
    };
    const [red, blue] = [await project('red'), await project('blue')];
    const create = (groupRoles: object[]) => call(h, 'POST', `/api/orgs/${acme}/sso/connections`, {
      cookie: owner, payload: { kind: 'oidc', name: 'groups', issuer: idp.issuer, clientId: 'palisade', clientSecret: SECRET, scopes: ['openid', 'email', 'profile', 'groups'], groupRoles },
    });
    // Rules an admin could not apply by hand are refused before anything is stored.
    expect((await create([{ group: 'x', role: 'admin', projectIds: [red] }])).statusCode).toBe(400);
    expect((await create([{ group: 'x', role: 'project_viewer' }])).statusCode).toBe(400);
    expect((await create([{ group: 'x', role: 'viewer', projectIds: [newId()] }])).statusCode).toBe(400);
    expect((await create([{ group: 'x', role: 'owner' }])).statusCode).toBe(400);
    const c = await create([
      { group: 'eng-admins', role: 'admin' },
      { group: 'eng', role: 'member', projectIds: [red] },
      { group: 'design', role: 'member', projectIds: [blue] },
      { group: 'auditors', role: 'viewer' },
    ]);
    expect(c.statusCode, c.body).toBe(201);
    const id = c.json<{ id: string; signIn: { groupRoles: unknown[] } }>().id;
    expect(c.json<{ signIn: { groupRoles: unknown[] } }>().signIn.groupRoles).toHaveLength(4);
    expect((await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${id}`, { cookie: owner, payload: { enabled: true } })).statusCode).toBe(200);
    const membership = async (userId: string) => {
      const [m] = await h.t.owner.query<{ role: string; restricted: boolean }>('select role, restricted from memberships where org_id = $1 and user_id = $2', [acme, userId]);
      const projects = await h.t.owner.query<{ project_id: string }>('select project_id::text from project_access where org_id = $1 and user_id = $2 order by project_id', [acme, userId]);
      return m ? { role: m.role, restricted: m.restricted, projects: projects.map((p) => p.project_id) } : null;
    };
    const via = `org=${acme}&connection=${id}`;

    // No jitRole: only a matching group creates the account.
    const nobody = person({ groups: ['sales'] });
    refused(await signIn(nobody, via));
    const ada = person({ groups: ['eng', 'design'] });
    const userId = (await me(await signIn(ada, via))).user.id;
    expect(await membership(userId)).toEqual({ role: 'member', restricted: true, projects: [red, blue].sort() });

    ada.groups = ['eng', 'eng-admins'];
    await me(await signIn(ada, via));
    expect(await membership(userId)).toMatchObject({ role: 'admin', restricted: false });

    ada.groups = ['eng'];
    await me(await signIn(ada, via));
    expect(await membership(userId)).toEqual({ role: 'member', restricted: true, projects: [red] });
    const changes = await auditSelect<{ action: string; details: { from?: string; to?: string; via?: string } }>(h, ['action', 'details'], `where org_id = $1 and target_id = $2 and action = 'member.role_changed' order by seq`, [acme, userId]);
    expect(changes.map((e) => [e.details.from, e.details.to, e.details.via])).toEqual([['member', 'admin', 'sso_groups'], ['admin', 'member', 'sso_groups']]);

    ada.groups = [];
    refused(await signIn(ada, via));
    expect(await membership(userId)).toBeNull();
    // An owner's role is never the IdP's to change.
    const boss = person({ groups: ['auditors'] });
    const bossId = (await me(await signIn(boss, via))).user.id;
    await h.t.owner.query("update memberships set role = 'owner', restricted = false where org_id = $1 and user_id = $2", [acme, bossId]);
    await me(await signIn(boss, via));
    expect(await membership(bossId)).toMatchObject({ role: 'owner' });
  });

  it('keeps the client secret out of every answer, log line and audit event', async () => {
    await signIn(person());
    const audit = await auditSelect(h, ['details'], ``);
    for (const secret of [SECRET, OTHER_SECRET]) {
      expect(JSON.stringify(audit)).not.toContain(secret);
      expect(h.logs.join('')).not.toContain(secret);
    }
  });
});
