/**
 * SSO enforcement over the live route table: every public route (and invitation acceptance) is
 * either walked with a real credential of a user under enforcement — and must answer 403
 * sso_required naming the SSO start, with no session — or listed here with why it is no local
 * way in. A new public route fails this test until it is one or the other.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import { createTestApp, ORIGIN, type Problem, type TestApp } from '../support/app.js';
import { mailTo } from '../support/accounts.js';
import { SoftAuthenticator } from '../support/authenticator.js';
import { call, sessionFrom } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { startGithub, signInAtGithub, type LoopbackGithub } from '../support/github.js';
import { addPasskey, enrollTotp, login, nextCode } from '../support/mfa.js';
import { startOidcProvider, type LoopbackIdp } from '../support/oidc.js';
import { ENFORCEMENT_CLIENT, enforceableOrg } from '../support/sso-enforcement.js';

const SSO_PATH = 'the SSO path itself (a sign-in through another org\u2019s connection is refused: src/domains/sso/enforcement.test.ts)';
const NOT_A_WAY_IN: Record<string, string> = {
  'GET /healthz': 'a probe',
  'GET /readyz': 'a probe',
  'GET /openapi.json': 'the API description',
  'POST /api/inbound/:org/:sourceId': 'a signed webhook from another system; no user',
  'POST /api/auth/passkey/options': 'starts a ceremony only; the sign-ins it leads to (passkey/login, mfa/passkey) are walked',
  'POST /api/auth/verify-email': 'proves a mailbox with the account\u2019s password; signs nobody in',
  'POST /api/auth/verify-email/resend': 'mails a verification link; signs nobody in',
  'POST /api/auth/break-glass': 'the one local way left, for the owners the org named: src/domains/sso/enforcement.test.ts',
  'GET /api/auth/sso/start': SSO_PATH,
  'GET /api/auth/sso/oidc/callback': SSO_PATH,
  'POST /api/auth/sso/handover': SSO_PATH,
  'GET /api/auth/sso/saml/:connectionId/metadata': SSO_PATH,
  'POST /api/auth/sso/saml/:connectionId/acs': SSO_PATH,
  'GET /api/auth/social/providers': 'lists the deployment\u2019s social providers; signs nobody in',
  'GET /api/auth/social/:provider/start': 'starts a social flow only; its callback is walked',
  'GET /api/export-downloads/:org/:exportId': 'spends a tenant export\u2019s download link (an owner asked for it signed in); signs nobody in',
  'GET /.well-known/palisade-export-keys': 'the public keys that sign export manifests; signs nobody in',
};

describe.each(ENGINES)('SSO enforcement over the live route table on %s', (engine) => {
  let h: TestApp;
  let idp: LoopbackIdp;
  let github: LoopbackGithub;
  beforeAll(async () => {
    idp = await startOidcProvider({ clients: [{ ...ENFORCEMENT_CLIENT, redirect_uris: [`${ORIGIN}/api/auth/sso/oidc/callback`] }] });
    // A social provider (GitHub's protocol on loopback): its sign-ins are a local way in too.
    github = await startGithub({ clients: [{ clientId: 'walk', clientSecret: 'walk-secret', redirectUri: `${ORIGIN}/api/auth/social/github/callback` }] });
    h = await createTestApp(engine, {
      config: {
        PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true', SOCIAL_GITHUB_CLIENT_ID: 'walk', SOCIAL_GITHUB_CLIENT_SECRET: 'walk-secret',
        SOCIAL_GITHUB_AUTHORIZE_URL: `${github.url}/login/oauth/authorize`, SOCIAL_GITHUB_TOKEN_URL: `${github.url}/login/oauth/access_token`,
        SOCIAL_GITHUB_API_URL: github.url,
      },
    });
  });
  afterAll(async () => {
    await h?.close();
    await idp?.close();
    await github?.close();
  });

  /** Start → GitHub as `login` → the callback, in one browser (its flow cookie). */
  async function viaGithub(login: string, start = () => call(h, 'GET', '/api/auth/social/github/start')): Promise<LightMyRequestResponse> {
    const started = await start();
    const location = started.statusCode === 201 ? started.json<{ location: string }>().location : String(started.headers.location);
    const back = await signInAtGithub(location, login);
    const flow = started.cookies.find((c) => c.name === '__Host-palisade_sso')?.value ?? '';
    return call(h, 'GET', `${back.pathname}${back.search}`, { cookie: `__Host-palisade_sso=${flow}` });
  }

  it('refuses every local way in with sso_required, or says why a public route is none', async () => {
    const org = await enforceableOrg(h, idp);
    // A user of the domain with every credential, and what they began before enforcement came on.
    const user = await org.person('member');
    const totp = await enrollTotp(h, user);
    const auth = new SoftAuthenticator(new URL(ORIGIN).hostname, ORIGIN);
    expect((await addPasskey(h, totp.cookie, auth)).statusCode).toBe(201);
    const pending = async (who: { email: string; password: string }) => (await login(h, who.email, who.password)).json<{ mfaToken: string }>().mfaToken;
    // One pending second step per account: the code's is another user's.
    const other = await org.person('member');
    const otherTotp = await enrollTotp(h, other);
    const forCode = await pending(other);
    const forPasskey = await pending(user);
    expect((await call(h, 'POST', '/api/auth/password-reset/request', { payload: { email: user.email } })).statusCode).toBe(202);
    const resetToken = /pal_pwr_[A-Za-z0-9_-]{43}/.exec((await mailTo(h, user.email)).at(-1)?.body ?? '')?.[0] ?? '';
    const asked = await call(h, 'POST', '/api/auth/magic-link', { payload: { email: user.email } });
    const binding = asked.cookies.find((c) => c.name === '__Host-palisade_link')?.value ?? '';
    const linkToken = /pal_mgl_[A-Za-z0-9_-]{43}/.exec((await mailTo(h, user.email)).at(-1)?.body ?? '')?.[0] ?? '';
    const invited = await call(h, 'POST', `/api/orgs/${h.orgId('acme')}/invitations`, {
      cookie: await h.cookieFor(h.user('acme', 'owner').email), payload: { email: user.email, role: 'viewer' },
    });
    expect(invited.statusCode, invited.body).toBe(201);
    expect([resetToken, binding, linkToken].every(Boolean)).toBe(true);
    // A GitHub identity the user linked from their session (their account has TOTP: the walk
    // checks the refusal comes before the handover to the second step), and a newcomer of the domain.
    github.accounts.set('walker', { id: 77, login: 'walker', emails: [{ email: `walker-${newId().slice(0, 6)}@users.test`, primary: true, verified: true }] });
    const linked = await viaGithub('walker', async () => call(h, 'POST', '/api/me/social/github/link', { cookie: await h.cookieFor(user.email), payload: {} }));
    expect(linked.statusCode, linked.body).toBe(302);
    const newcomer = `social-${newId().slice(0, 6)}@${org.domain}`;
    github.accounts.set('newcomer', { id: 78, login: 'newcomer', emails: [{ email: newcomer, primary: true, verified: true }] });
    expect((await org.enforce(true)).statusCode).toBe(200);

    const options = async (mfaToken?: string) => {
      const r = await call(h, 'POST', '/api/auth/passkey/options', { payload: mfaToken ? { mfaToken } : {} });
      return r.json<{ ceremonyToken: string; options: never }>();
    };
    const newAddress = `new-${newId().slice(0, 6)}@${org.domain}`;
    const walks: Record<string, { email: string; attempt: () => Promise<LightMyRequestResponse> }> = {
      'POST /api/auth/login': { email: user.email, attempt: () => login(h, user.email, user.password) },
      'POST /api/auth/register': { email: newAddress, attempt: () => call(h, 'POST', '/api/auth/register', { payload: { email: newAddress, password: 'a-long-enough-passphrase-42', name: 'New' } }) },
      'POST /api/auth/password-reset/request': { email: user.email, attempt: () => call(h, 'POST', '/api/auth/password-reset/request', { payload: { email: user.email } }) },
      'POST /api/auth/password-reset/confirm': { email: user.email, attempt: () => call(h, 'POST', '/api/auth/password-reset/confirm', { payload: { token: resetToken, password: 'another-long-passphrase-9' } }) },
      'POST /api/auth/magic-link': { email: user.email, attempt: () => call(h, 'POST', '/api/auth/magic-link', { payload: { email: user.email } }) },
      'POST /api/auth/magic-link/verify': {
        email: user.email, attempt: () => call(h, 'POST', '/api/auth/magic-link/verify', { payload: { token: linkToken }, cookie: `__Host-palisade_link=${binding}` }),
      },
      'POST /api/auth/mfa/verify': { email: other.email, attempt: () => call(h, 'POST', '/api/auth/mfa/verify', { payload: { mfaToken: forCode, code: nextCode(h, otherTotp.secret) } }) },
      'POST /api/auth/mfa/passkey': {
        email: user.email,
        attempt: async () => {
          const o = await options(forPasskey);
          return call(h, 'POST', '/api/auth/mfa/passkey', { payload: { mfaToken: forPasskey, ceremonyToken: o.ceremonyToken, response: auth.get(o.options) } });
        },
      },
      'POST /api/auth/passkey/login': {
        email: user.email,
        attempt: async () => {
          const o = await options();
          return call(h, 'POST', '/api/auth/passkey/login', { payload: { ceremonyToken: o.ceremonyToken, response: auth.get(o.options) } });
        },
      },
      'GET /api/auth/social/:provider/callback': { email: user.email, attempt: () => viaGithub('walker') },
      // A session the org's SSO did not open (one that outlived the switch: issued directly here).
      'POST /api/invitations/accept': {
        email: user.email,
        attempt: async () => call(h, 'POST', '/api/invitations/accept', { cookie: await h.cookieFor(user.email), payload: { token: invited.json<{ token: string }>().token } }),
      },
    };

    const routes = h.built.routes.map((r) => ({ key: `${r.method} ${r.url}`, mode: r.auth.mode }));
    const unwalked = routes.filter((r) => r.mode === 'public' && !(r.key in walks) && !(r.key in NOT_A_WAY_IN)).map((r) => r.key);
    expect(unwalked, 'public routes neither walked nor explained').toEqual([]);
    for (const key of Object.keys(walks)) expect(routes.map((r) => r.key), `walked route gone: ${key}`).toContain(key);
    for (const key of Object.keys(NOT_A_WAY_IN)) expect(routes.map((r) => r.key), `explained route gone: ${key}`).toContain(key);

    for (const [key, walk] of Object.entries(walks)) {
      const res = await walk.attempt();
      expect(res.statusCode, `${key}: ${res.body}`).toBe(403);
      const p = res.json<Problem & { ssoStart?: string }>();
      expect(p.code, key).toBe('sso_required');
      expect(p.ssoStart, key).toBe(`/api/auth/sso/start?email=${encodeURIComponent(walk.email)}`);
      expect(sessionFrom(res), key).toBeFalsy();
    }
    // A social sign-up with a new address of the domain is refused before the account is created.
    const signUp = await viaGithub('newcomer');
    expect([signUp.statusCode, signUp.json<Problem & { ssoStart?: string }>().ssoStart]).toEqual([403, `/api/auth/sso/start?email=${encodeURIComponent(newcomer)}`]);
    expect(await h.hasUser(newcomer)).toBe(false);
    expect(await h.t.owner.query('select 1 from sso_handovers where user_id = $1', [user.id])).toHaveLength(0);
    // Nothing the walk refused was written: no membership, no new account, the password unchanged.
    expect(await h.t.owner.query('select 1 from memberships where org_id = $1 and user_id = $2', [h.orgId('acme'), user.id])).toHaveLength(0);
    expect(await h.hasUser(newAddress)).toBe(false);
    console.log(`SSO enforcement walk (${engine}): ${Object.keys(walks).length} ways in refused, ${Object.keys(NOT_A_WAY_IN).length} public routes explained`);
  });
});
