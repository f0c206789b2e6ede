import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../crypto/index.js';
import { createTestApp, ORIGIN, testConfig, type Problem, type TestApp } from '../../../test/support/app.js';
import { call, sessionFrom } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { startGithub, signInAtGithub, type GithubAccount, type LoopbackGithub } from '../../../test/support/github.js';
import { enrollTotp, nextCode, verifyMfa } from '../../../test/support/mfa.js';
import { signInAtIdp, startOidcProvider, type IdpAccount, type LoopbackIdp } from '../../../test/support/oidc.js';
import { freshOrg, passwordUser } from '../../../test/support/users.js';
import { createFlowSealer, type SocialFlowState } from '../sso/flow-state.js';
import { socialIdentityEmailRef } from '../identity/people.js';
import { auditSelect, auditRows } from '../../../test/support/evidence.js';

const GOOGLE_SECRET = 'canary-social-google-secret-5a1f0c';
const MICROSOFT_SECRET = 'canary-social-microsoft-secret-0be7d4';
const GITHUB_SECRET = 'canary-social-github-secret-c93e21';
const FLOW = '__Host-palisade_sso';
const callbackOf = (provider: string) => `${ORIGIN}/api/auth/social/${provider}/callback`;

interface Me {
  user: { id: string; email: string };
}

/** The identities of a subject, with the address the provider asserted opened as the app opens it (sealed at rest: the clear column stays empty). */
async function identitiesOf(h: TestApp, provider: string, subject: string): Promise<{ user_id: string; email: string }[]> {
  const found = await h.t.owner.query<{ id: string; user_id: string; email: string; email_sealed: string }>(
    'select id, user_id, email, email_sealed from social_identities where provider = $1 and subject = $2', [provider, subject]);
  return h.t.db.withSystem('test: open identities', async (tx) => {
    const open = h.built.services.sealer.opener(tx);
    const out: { user_id: string; email: string }[] = [];
    for (const r of found) {
      const email = await open(socialIdentityEmailRef(r.id), r.email_sealed);
      expect([r.email, r.email_sealed.includes(email)]).toEqual(['', false]);
      out.push({ user_id: r.user_id, email });
    }
    return out;
  });
}

/**
 * Social sign-in against real protocol peers on loopback: oidc-provider as Google (the preset,
 * its issuer overridden) and as a generic OIDC provider (Microsoft personal accounts), and a
 * server speaking GitHub's OAuth 2 flow and REST API.
 */
describe.each(ENGINES)('social sign-in on %s', (engine) => {
  let h: TestApp;
  let google: LoopbackIdp;
  let microsoft: LoopbackIdp;
  let github: LoopbackGithub;
  const googleAccounts = new Map<string, IdpAccount>();
  const microsoftAccounts = new Map<string, IdpAccount>();
  const flows = createFlowSealer(testConfig().sessionSecret);

  const googler = (over: Partial<IdpAccount> = {}): IdpAccount => {
    const sub = `g-${newId()}`;
    const a = { sub, email: `${sub.slice(2, 14)}@gmail.test`, email_verified: true, name: 'Grace Google', ...over };
    googleAccounts.set(sub, a);
    return a;
  };
  let githubSerial = 1000;
  const hubber = (over: Partial<GithubAccount> = {}): GithubAccount => {
    const id = githubSerial++;
    const a = { id, login: `octo-${id}`, name: 'Octo Cat', emails: [{ email: `octo-${id}-${newId().slice(0, 6)}@users.test`, primary: true, verified: true }], ...over };
    github.accounts.set(a.login, a);
    return a;
  };

  const flowOf = (res: LightMyRequestResponse) => res.cookies.find((c) => c.name === FLOW)?.value;
  const back = (url: URL, flow: string | undefined) =>
    call(h, 'GET', `${url.pathname}${url.search}`, flow === undefined ? {} : { cookie: `${FLOW}=${flow}` });

  /** Start → the provider (signed in as `who`) → the callback URL and the flow cookie, not yet redeemed. */
  async function atProvider(provider: 'google' | 'microsoft' | 'github', who: string, query = ''): Promise<{ url: URL; flow: string; authorization: URL }> {
    const res = await call(h, 'GET', `/api/auth/social/${provider}/start${query}`);
    expect(res.statusCode, res.body).toBe(302);
    const flow = flowOf(res) as string;
    expect(flow).toBeTruthy();
    const authorization = new URL(String(res.headers.location));
    const url = provider === 'github'
      ? await signInAtGithub(authorization.href, who)
      : await signInAtIdp(authorization.href, who, callbackOf(provider));
    return { url, flow, authorization };
  }
  async function signIn(provider: 'google' | 'microsoft' | 'github', who: string, query?: string): Promise<LightMyRequestResponse> {
    const { url, flow } = await atProvider(provider, who, query);
    return back(url, flow);
  }
  const me = async (res: LightMyRequestResponse): Promise<Me> => {
    expect(res.statusCode, res.body).toBe(302);
    const cookie = sessionFrom(res);
    expect(cookie, res.body).toBeTruthy();
    const r = await call(h, 'GET', '/api/me', { cookie: cookie as string });
    expect(r.statusCode, r.body).toBe(200);
    return r.json<Me>();
  };
  const refused = (res: LightMyRequestResponse, code = 'sso_failed') => {
    expect(res.statusCode, res.body).toBe(code === 'conflict' ? 409 : 401);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json<Problem>().code).toBe(code);
    expect(sessionFrom(res)).toBeFalsy();
    return res.json<Problem>().detail ?? '';
  };
  const identities = (provider: string, subject: string) => identitiesOf(h, provider, subject);

  beforeAll(async () => {
    google = await startOidcProvider({
      clients: [{ client_id: 'google-client', client_secret: GOOGLE_SECRET, redirect_uris: [callbackOf('google')] }], accounts: googleAccounts,
    });
    microsoft = await startOidcProvider({
      clients: [{ client_id: 'ms-client', client_secret: MICROSOFT_SECRET, redirect_uris: [callbackOf('microsoft')] }], accounts: microsoftAccounts,
    });
    github = await startGithub({ clients: [{ clientId: 'gh-client', clientSecret: GITHUB_SECRET, redirectUri: callbackOf('github') }] });
    h = await createTestApp(engine, {
      config: {
        PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true',
        SOCIAL_GOOGLE_CLIENT_ID: 'google-client', SOCIAL_GOOGLE_CLIENT_SECRET: GOOGLE_SECRET, SOCIAL_GOOGLE_ISSUER: google.issuer,
        SOCIAL_GITHUB_CLIENT_ID: 'gh-client', SOCIAL_GITHUB_CLIENT_SECRET: GITHUB_SECRET,
        SOCIAL_GITHUB_AUTHORIZE_URL: `${github.url}/login/oauth/authorize`, SOCIAL_GITHUB_TOKEN_URL: `${github.url}/login/oauth/access_token`,
        SOCIAL_GITHUB_API_URL: github.url,
        SOCIAL_OIDC_PROVIDERS: 'microsoft', SOCIAL_OIDC_MICROSOFT_NAME: 'Microsoft', SOCIAL_OIDC_MICROSOFT_ISSUER: microsoft.issuer,
        SOCIAL_OIDC_MICROSOFT_CLIENT_ID: 'ms-client', SOCIAL_OIDC_MICROSOFT_CLIENT_SECRET: MICROSOFT_SECRET,
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    await google?.close();
    await microsoft?.close();
    await github?.close();
  });

  it('lists the enabled providers for sign-in buttons, and answers 404 for one not configured', async () => {
    const list = await call(h, 'GET', '/api/auth/social/providers');
    expect(list.statusCode, list.body).toBe(200);
    expect(list.json()).toEqual({
      providers: [
        { id: 'google', name: 'Google', protocol: 'oidc', start: '/api/auth/social/google/start' },
        { id: 'github', name: 'GitHub', protocol: 'oauth2', start: '/api/auth/social/github/start' },
        { id: 'microsoft', name: 'Microsoft', protocol: 'oidc', start: '/api/auth/social/microsoft/start' },
      ],
    });
    expect(list.body).not.toContain(GOOGLE_SECRET);
    for (const url of ['/api/auth/social/facebook/start', '/api/auth/social/facebook/callback?code=x&state=y']) {
      const res = await call(h, 'GET', url);
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json<Problem>().code).toBe('not_found');
    }
    const cookie = await h.cookieFor(h.user('acme', 'member').email);
    const link = await call(h, 'POST', '/api/me/social/facebook/link', { cookie, payload: {} });
    expect([link.statusCode, link.json<Problem>().code]).toEqual([404, 'not_found']);
  });

  it('sends the browser to Google with PKCE (S256), state and nonce sealed in the flow cookie', async () => {
    const res = await call(h, 'GET', '/api/auth/social/google/start?returnTo=/welcome');
    expect(res.statusCode, res.body).toBe(302);
    const auth = new URL(String(res.headers.location));
    expect(auth.origin).toBe(google.issuer);
    expect(auth.searchParams.get('client_id')).toBe('google-client');
    expect(auth.searchParams.get('redirect_uri')).toBe(callbackOf('google'));
    expect(auth.searchParams.get('code_challenge_method')).toBe('S256');
    expect(auth.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(auth.searchParams.get('nonce')).toBeTruthy();
    expect(auth.searchParams.get('scope')).toBe('openid email profile');
    const cookie = res.cookies.find((c) => c.name === FLOW);
    expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax', path: '/', maxAge: 600 });
    expect(cookie?.value).not.toContain(auth.searchParams.get('state') ?? '-');
    const gh = new URL(String((await call(h, 'GET', '/api/auth/social/github/start')).headers.location));
    expect(gh.origin + gh.pathname).toBe(`${github.url}/login/oauth/authorize`);
    expect(gh.searchParams.get('code_challenge_method')).toBe('S256');
    expect(gh.searchParams.get('scope')).toBe('read:user user:email');
  });

  it('creates an account at a first Google sign-in with a verified address, and finds it by subject after', async () => {
    const grace = googler();
    const first = await signIn('google', grace.sub, '?returnTo=/welcome');
    expect(first.headers.location).toBe('/welcome');
    expect(first.cookies.find((c) => c.name === FLOW)?.value).toBe('');
    const who = await me(first);
    expect(who.user.email).toBe(grace.email);
    const [u] = await h.t.owner.query<{ email_verified_at: Date | null; password_hash: string | null }>(
      'select email_verified_at, password_hash from users where id = $1', [who.user.id]);
    expect({ ...u, name: (await h.person(who.user.id))?.name }).toMatchObject({ password_hash: null, name: 'Grace Google' });
    expect(u?.email_verified_at).toBeTruthy();
    const [s] = await h.t.owner.query<{ auth_method: string; mfa_verified: boolean; stepped_up_at: Date | null; sso_org_id: string | null }>(
      'select auth_method, mfa_verified, stepped_up_at, sso_org_id from sessions where user_id = $1', [who.user.id]);
    // A first factor only: not a second factor, not a fresh proof, not an org's SSO.
    expect(s).toEqual({ auth_method: 'social', mfa_verified: false, stepped_up_at: null, sso_org_id: null });
    const events = await auditSelect<{ action: string; details: Record<string, unknown> | null }>(h, ['action', 'details'], `where target_id = $1 or (action = 'auth.login' and actor_id = $1) order by at, seq`, [who.user.id]);
    expect(events.map((e) => e.action)).toEqual(['auth.social_account_created', 'auth.social_identity_linked', 'auth.login']);
    expect(events[2]?.details).toMatchObject({ socialProvider: 'google' });

    const again = await signIn('google', grace.sub);
    expect((await me(again)).user.id).toBe(who.user.id);
    // The provider saying another address later changes nothing about who it is.
    grace.email = `renamed-${grace.email}`;
    expect((await me(await signIn('google', grace.sub))).user.id).toBe(who.user.id);
    expect(await identities('google', grace.sub)).toEqual([{ user_id: who.user.id, email: grace.email }]);
    // The same subject at another provider is another identity.
    microsoftAccounts.set(grace.sub, { ...grace, email: `ms-${grace.email}` });
    expect((await me(await signIn('microsoft', grace.sub))).user.id).not.toBe(who.user.id);
  });

  it('signs in with the generic OIDC entry (Microsoft personal accounts) and with GitHub', async () => {
    const sub = `m-${newId()}`;
    microsoftAccounts.set(sub, { sub, email: `${sub.slice(2, 12)}@outlook.test`, email_verified: true, name: 'Mia Microsoft' });
    const mia = await me(await signIn('microsoft', sub));
    expect(mia.user.email).toBe(microsoftAccounts.get(sub)?.email);
    expect((await identities('microsoft', sub))[0]?.user_id).toBe(mia.user.id);

    const octo = hubber({ emails: [{ email: 'octo-other@users.test', primary: false, verified: true }, { email: `octo-${newId().slice(0, 8)}@users.test`, primary: true, verified: true }] });
    const who = await me(await signIn('github', octo.login));
    // The primary verified address, and the numeric id as the subject (never the login).
    expect(who.user.email).toBe(octo.emails[1]?.email);
    expect((await identities('github', String(octo.id)))[0]?.user_id).toBe(who.user.id);
    // The token request carried the PKCE verifier and the registered redirect URI.
    const sent = github.tokenRequests.at(-1);
    expect(sent?.get('code_verifier')).toMatch(/^[A-Za-z0-9_-]{43,128}$/);
    expect(sent?.get('redirect_uri')).toBe(callbackOf('github'));
    octo.login = `renamed-${octo.login}`;
    github.accounts.set(octo.login, octo);
    expect((await me(await signIn('github', octo.login))).user.id).toBe(who.user.id);
  });

  it('refuses a callback with a wrong state, without this browser\u2019s flow, for another provider, or replayed', async () => {
    for (const provider of ['google', 'github'] as const) {
      const who = provider === 'google' ? googler().sub : hubber().login;
      const { url, flow } = await atProvider(provider, who);
      expect(refused(await back(url, undefined))).toContain('no sign-in with this provider in progress');
      const wrongState = new URL(url);
      wrongState.searchParams.set('state', 'x'.repeat(43));
      refused(await back(wrongState, flow));
      // A flow sealed for another provider, or an SSO flow, is not this one's.
      const other = provider === 'google' ? 'github' : 'google';
      const elsewhere = new URL(url.href.replace(`/social/${provider}/`, `/social/${other}/`));
      expect(refused(await back(elsewhere, flow))).toContain('no sign-in with this provider in progress');
      const open = flows.openSocial(flow, h.clock.now().getTime()) as SocialFlowState;
      expect(refused(await back(url, flows.sealSocial({ ...open, expiresAt: h.clock.now().getTime() - 1 })))).toContain('in progress');
      if (provider === 'github') {
        // A verifier that is not the flow's: GitHub refuses the code (and spends it).
        const { url: u2, flow: f2 } = await atProvider(provider, who);
        const o2 = flows.openSocial(f2, h.clock.now().getTime()) as SocialFlowState;
        expect(refused(await back(u2, flows.sealSocial({ ...o2, verifier: 'v'.repeat(64) })))).toContain('bad_verification_code');
      }
      // The untouched callback works once (the refusals above spent nothing)...
      const ok = await back(url, flow);
      expect(ok.statusCode, ok.body).toBe(302);
      expect(sessionFrom(ok)).toBeTruthy();
      // ...and a replay finds the code spent at the provider.
      expect(refused(await back(url, flow))).toMatch(/refused the sign-in|could not be completed/);
    }
    // The user said no at GitHub.
    const { authorization } = await atProvider('github', hubber().login);
    const start = await call(h, 'GET', '/api/auth/social/github/start');
    const denied = await signInAtGithub(new URL(String(start.headers.location)).href, 'nobody', { deny: true });
    expect(authorization.searchParams.get('state')).not.toBe(denied.searchParams.get('state'));
    expect(refused(await back(denied, flowOf(start)))).toContain('access_denied');
    const failures = await h.t.owner.query<{ n: number }>("select count(*)::int as n from audit_events where action = 'auth.social_failed'");
    expect(failures[0]?.n).toBeGreaterThanOrEqual(5);
  });

  it('never matches or creates an account with an address the provider did not verify', async () => {
    const unverified = googler({ email_verified: false });
    expect(refused(await signIn('google', unverified.sub))).toContain('verified email address');
    const noClaim = googler();
    delete noClaim.email_verified;
    expect(refused(await signIn('google', noClaim.sub))).toContain('verified email address');
    const octo = hubber({ emails: [{ email: `unverified-${newId().slice(0, 6)}@users.test`, primary: true, verified: false }] });
    expect(refused(await signIn('github', octo.login))).toContain('verified email address');
    for (const email of [unverified.email, noClaim.email, octo.emails[0]?.email]) expect(await h.hasUser(email ?? '')).toBe(false);
    expect(await identities('google', unverified.sub)).toEqual([]);
    expect(await identities('github', String(octo.id))).toEqual([]);
  });

  it('lets no provider take over an existing account by asserting its address: refused, nothing written', async () => {
    const victim = await passwordUser(h, h.orgId('acme'));
    const before = await h.t.owner.query('select * from users where id = $1', [victim.id]);
    const usersBefore = await h.t.owner.query<{ n: number }>('select count(*)::int as n from users');
    const auditBefore = await h.t.owner.query<{ n: number }>("select count(*)::int as n from audit_events where action <> 'auth.social_failed'");
    // A verified address at the provider, equal to the account's (whatever its case).
    const attacker = googler({ email: victim.email.toUpperCase() });
    const detail = refused(await signIn('google', attacker.sub), 'conflict');
    expect(detail).toMatch(/sign in to it.*link Google from your account/);
    const octo = hubber({ emails: [{ email: victim.email, primary: true, verified: true }] });
    expect(refused(await signIn('github', octo.login), 'conflict')).toContain('never linked by its email address alone');
    // Other spellings of the same mailbox (a trailing dot, a space) make no second account beside it.
    for (const spelling of [`${victim.email}.`, ` ${victim.email}`]) {
      refused(await signIn('google', googler({ email: spelling }).sub), 'conflict');
    }
    expect(await h.t.owner.query<{ n: number }>('select count(*)::int as n from users')).toEqual(usersBefore);
    expect(await h.userId(victim.email)).toBe(victim.id);
    expect(await h.t.owner.query('select * from users where id = $1', [victim.id])).toEqual(before);
    expect(await h.t.owner.query('select 1 from social_identities where user_id = $1', [victim.id])).toEqual([]);
    expect(await h.t.owner.query('select 1 from sessions where user_id = $1', [victim.id])).toEqual([]);
    expect(await h.t.owner.query<{ n: number }>("select count(*)::int as n from audit_events where action <> 'auth.social_failed'")).toEqual(auditBefore);
    const [failure] = (await auditRows(h, "where action = 'auth.social_failed' order by at desc, seq desc")).filter((e) => e.details.provider === 'github');
    expect(failure?.details.provider).toBe('github');
  });

  it('links a provider identity from a signed-in session (with a fresh proof), which then signs that account in', async () => {
    const user = await passwordUser(h);
    // The provider's address differs from the account's: the session proves the account, the flow the identity.
    const octo = hubber({ emails: [{ email: `elsewhere-${newId().slice(0, 6)}@users.test`, primary: true, verified: true }] });
    const cookie = await h.cookieFor(user.email);
    h.clock.advance(11 * 60_000);
    const stale = await call(h, 'POST', '/api/me/social/github/link', { cookie, payload: {} });
    expect([stale.statusCode, stale.json<Problem>().code]).toEqual([403, 'step_up_required']);
    const fresh = await h.cookieFor(user.email);
    const started = await call(h, 'POST', '/api/me/social/github/link', { cookie: fresh, payload: { returnTo: '/settings' } });
    expect(started.statusCode, started.body).toBe(201);
    const url = await signInAtGithub(started.json<{ location: string }>().location, octo.login);
    const done = await back(url, flowOf(started));
    expect(done.statusCode, done.body).toBe(302);
    expect(done.headers.location).toBe('/settings?social_linked=github');
    expect(sessionFrom(done)).toBeFalsy();
    expect(await identities('github', String(octo.id))).toEqual([{ user_id: user.id, email: octo.emails[0]?.email }]);
    const actions = await auditSelect<{ action: string; details: { via?: string } }>(h, ['action', 'details'], `where target_id = $1 and action like 'auth.social_%' order by at, seq`, [user.id]);
    expect(actions.map((a) => [a.action, a.details.via])).toEqual([['auth.social_link_started', undefined], ['auth.social_identity_linked', 'session']]);

    expect((await me(await signIn('github', octo.login))).user.id).toBe(user.id);
    // The same identity cannot be linked to a second account, nor a second identity to this one.
    const other = await passwordUser(h);
    const again = await call(h, 'POST', '/api/me/social/github/link', { cookie: await h.cookieFor(other.email), payload: {} });
    expect(refused(await back(await signInAtGithub(again.json<{ location: string }>().location, octo.login), flowOf(again)), 'conflict'))
      .toContain('linked to another account');
    const second = hubber();
    const more = await call(h, 'POST', '/api/me/social/github/link', { cookie: await h.cookieFor(user.email), payload: {} });
    expect(refused(await back(await signInAtGithub(more.json<{ location: string }>().location, second.login), flowOf(more)), 'conflict'))
      .toContain('linked to another GitHub identity');
    // A link whose session ended meanwhile links nothing.
    const ended = await call(h, 'POST', '/api/me/social/google/link', { cookie: fresh, payload: {} });
    const grace = googler();
    const atGoogle = await signInAtIdp(ended.json<{ location: string }>().location, grace.sub, callbackOf('google'));
    await h.t.owner.query('update sessions set revoked_at = now() where user_id = $1', [user.id]);
    expect(refused(await back(atGoogle, flowOf(ended)))).toContain('session that asked for the link has ended');
    expect(await identities('google', grace.sub)).toEqual([]);
  });

  it('lists the linked identities and unlinks one (with a fresh proof): it signs nobody in after', async () => {
    const user = await passwordUser(h);
    const octo = hubber({ emails: [{ email: `unlink-${newId().slice(0, 6)}@users.test`, primary: true, verified: true }] });
    const cookie = await h.cookieFor(user.email);
    const started = await call(h, 'POST', '/api/me/social/github/link', { cookie, payload: {} });
    expect((await back(await signInAtGithub(started.json<{ location: string }>().location, octo.login), flowOf(started))).statusCode).toBe(302);
    const listed = await call(h, 'GET', '/api/me/social', { cookie });
    expect(listed.json()).toMatchObject({ identities: [{ provider: 'github', email: octo.emails[0]?.email }] });
    // Another user cannot unlink it (it is not theirs: 404), and a stale session must prove itself first.
    expect((await call(h, 'DELETE', '/api/me/social/github', { cookie: await h.cookieFor((await passwordUser(h)).email) })).statusCode).toBe(404);
    h.clock.advance(11 * 60_000);
    expect((await call(h, 'DELETE', '/api/me/social/github', { cookie })).json<Problem>().code).toBe('step_up_required');
    const fresh = await h.cookieFor(user.email);
    expect((await call(h, 'DELETE', '/api/me/social/github', { cookie: fresh })).statusCode).toBe(204);
    expect((await call(h, 'DELETE', '/api/me/social/github', { cookie: fresh })).statusCode).toBe(404);
    expect(await identities('github', String(octo.id))).toEqual([]);
    expect((await call(h, 'GET', '/api/me/social', { cookie: fresh })).json()).toEqual({ identities: [] });
    // The identity is a stranger now: its verified address is new, so it would make a new account, not reach this one.
    const after = await signIn('github', octo.login);
    expect(sessionFrom(after) ? (await me(after)).user.id : null).not.toBe(user.id);
    const [evidence] = await auditSelect<{ details: { provider: string } }>(h, ['details'], `where action = 'auth.social_identity_unlinked' and target_id = $1`, [user.id]);
    expect(evidence?.details.provider).toBe('github');
  });

  it('sends an address under an org\u2019s SSO enforcement to its IdP, existing account or new', async () => {
    const domain = `enforced-${newId().slice(0, 8)}.example`;
    const { orgId } = await freshOrg(h);
    await h.t.owner.query('insert into verified_domains (domain, org_id) values ($1, $2)', [domain, orgId]);
    await h.t.owner.query('insert into sso_enforcement (org_id, enforced_since) values ($1, now())', [orgId]);
    const existing = `old-${newId().slice(0, 6)}@${domain}`;
    await h.insertUser({ id: newId(), email: existing, name: 'Old', verified: true });
    const newcomer = `new-${newId().slice(0, 6)}@${domain}`;
    for (const email of [existing, newcomer]) {
      const res = await signIn('google', googler({ email }).sub);
      expect(res.statusCode, res.body).toBe(403);
      expect(res.json<Problem & { ssoStart?: string }>()).toMatchObject({ code: 'sso_required', ssoStart: `/api/auth/sso/start?email=${encodeURIComponent(email)}` });
      expect(sessionFrom(res)).toBeFalsy();
    }
    expect(await h.hasUser(newcomer)).toBe(false);
  });

  it('asks an account with TOTP for its second factor after the provider, through the SSO handover', async () => {
    const user = await passwordUser(h);
    const totp = await enrollTotp(h, user);
    const grace = googler({ email: `totp-${newId().slice(0, 6)}@gmail.test` });
    const linking = await call(h, 'POST', '/api/me/social/google/link', { cookie: await h.cookieFor(user.email), payload: {} });
    expect(linking.statusCode, linking.body).toBe(201);
    const linked = await back(await signInAtIdp(linking.json<{ location: string }>().location, grace.sub, callbackOf('google')), flowOf(linking));
    expect(linked.statusCode, linked.body).toBe(302);

    const res = await signIn('google', grace.sub, '?returnTo=/console');
    expect(res.statusCode, res.body).toBe(302);
    expect(sessionFrom(res)).toBeFalsy();
    const landing = new URL(String(res.headers.location), ORIGIN);
    expect(landing.pathname).toBe('/console');
    const code = landing.searchParams.get('sso_handover') ?? '';
    expect(code).toMatch(/^pal_sho_[A-Za-z0-9_-]{43}$/);
    const handover = await call(h, 'POST', '/api/auth/sso/handover', { payload: { code } });
    expect(handover.statusCode, handover.body).toBe(200);
    const pending = handover.json<{ mfaRequired: true; mfaToken: string; methods: string[] }>();
    expect(pending.methods).toContain('totp');
    expect((await call(h, 'POST', '/api/auth/sso/handover', { payload: { code } })).json<Problem>().code).toBe('token_invalid');
    const done = await verifyMfa(h, pending.mfaToken, { code: nextCode(h, totp.secret) });
    expect(done.statusCode, done.body).toBe(200);
    const [s] = await h.t.owner.query<{ auth_method: string; mfa_verified: boolean; sso_org_id: string | null }>(
      'select auth_method, mfa_verified, sso_org_id from sessions where user_id = $1 and revoked_at is null order by created_at desc limit 1', [user.id]);
    expect(s).toEqual({ auth_method: 'totp', mfa_verified: true, sso_org_id: null });
  });

  it('keeps every client secret out of answers, log lines and the audit trail', async () => {
    await signIn('github', hubber().login);
    await signIn('google', googler().sub);
    const audit = JSON.stringify(await auditSelect(h, ['details'], ``));
    for (const secret of [GOOGLE_SECRET, MICROSOFT_SECRET, GITHUB_SECRET]) {
      expect(audit).not.toContain(secret);
      expect(h.logs.join('')).not.toContain(secret);
    }
  });
});

/** SOCIAL_SIGN_UP=false: providers sign in linked identities only; nobody new gets an account through them. */
describe('social sign-in with sign-up closed', () => {
  let h: TestApp;
  let github: LoopbackGithub;

  beforeAll(async () => {
    github = await startGithub({ clients: [{ clientId: 'gh-client', clientSecret: GITHUB_SECRET, redirectUri: callbackOf('github') }] });
    h = await createTestApp(ENGINES[0] ?? 'pglite', {
      config: {
        PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true', SOCIAL_SIGN_UP: 'false',
        SOCIAL_GITHUB_CLIENT_ID: 'gh-client', SOCIAL_GITHUB_CLIENT_SECRET: GITHUB_SECRET,
        SOCIAL_GITHUB_AUTHORIZE_URL: `${github.url}/login/oauth/authorize`, SOCIAL_GITHUB_TOKEN_URL: `${github.url}/login/oauth/access_token`,
        SOCIAL_GITHUB_API_URL: github.url,
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    await github?.close();
  });

  it('refuses an unknown identity with a verified new address, and still signs in a linked one', async () => {
    const email = `closed-${newId().slice(0, 8)}@users.test`;
    github.accounts.set('newcomer', { id: 1, login: 'newcomer', emails: [{ email, primary: true, verified: true }] });
    const start = await call(h, 'GET', '/api/auth/social/github/start');
    const flow = start.cookies.find((c) => c.name === FLOW)?.value ?? '';
    const url = await signInAtGithub(String(start.headers.location), 'newcomer');
    const res = await call(h, 'GET', `${url.pathname}${url.search}`, { cookie: `${FLOW}=${flow}` });
    expect([res.statusCode, res.json<Problem>().code]).toEqual([401, 'sso_failed']);
    expect(res.json<Problem>().detail).toContain('sign-up through it is closed');
    expect(await h.hasUser(email)).toBe(false);

    const user = await passwordUser(h);
    const link = await call(h, 'POST', '/api/me/social/github/link', { cookie: await h.cookieFor(user.email), payload: {} });
    const back = await signInAtGithub(link.json<{ location: string }>().location, 'newcomer');
    const linked = await call(h, 'GET', `${back.pathname}${back.search}`, { cookie: `${FLOW}=${link.cookies.find((c) => c.name === FLOW)?.value ?? ''}` });
    expect(linked.statusCode, linked.body).toBe(302);
    const again = await call(h, 'GET', '/api/auth/social/github/start');
    const at = await signInAtGithub(String(again.headers.location), 'newcomer');
    const signedIn = await call(h, 'GET', `${at.pathname}${at.search}`, { cookie: `${FLOW}=${again.cookies.find((c) => c.name === FLOW)?.value ?? ''}` });
    expect(signedIn.statusCode, signedIn.body).toBe(302);
    expect(sessionFrom(signedIn)).toBeTruthy();
  });
});
