/**
 * Canary secrets pushed through every credential flow — registration, email verification,
 * login, failed login, password change, password reset, invitations, API keys, webhook and audit stream secrets,
 * the metrics token, the SMTP password (mail sent, refused, and refused at AUTH), integration credentials (stored, replaced, opened by
 * host code, quoted by its use report and its error) — must never show up in the logs, in a problem answer, in the audit trail,
 * nor in clear anywhere in the database. Neither may the session cookies and the verification,
 * reset and invitation tokens those flows hand out.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createMetricsServer } from '../../src/http/metrics-server.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';
import { startGithub, signInAtGithub, type LoopbackGithub } from '../support/github.js';
import { startSmtp, type LoopbackSmtp } from '../support/smtp.js';
import { auditSelect } from '../support/evidence.js';

const PASSWORD = 'CANARY-pw-7f3a9c1e-long';
const BAD_PASSWORD = 'CANARY-bad-9d2b';
const CHANGED_PASSWORD = 'CANARY-changed-4e1b8a77-long';
const RESET_PASSWORD = 'CANARY-reset-5c2d9f01-long';
const WEAK_PASSWORD = 'CANARY-w';
const EMAIL = 'canary.user@example.test';
const SOCIAL_CLIENT_SECRET = 'CANARY-social-client-secret-3f9a0e7b';
const SOCIAL_EMAIL = 'canary.social@users.test';
const SMTP_PASSWORD = 'CANARY-smtp-pw-6d1e9b3f';
const VAULT_VALUE = 'CANARY-vault-value-1c7e5a93b2';
const VAULT_ROTATED = 'CANARY-vault-rotated-0d4f8b61e7';
const VAULT_REFUSED = 'CANARY-vault-refused-6a2c';

type Method = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

describe.each(ENGINES)('secret canaries on %s', (engine) => {
  let h: TestApp;
  /** Every secret the flows used or handed out. */
  const secrets = new Map<string, string>();
  /** Bodies of every problem+json answer seen. */
  const problems: string[] = [];
  /** Every session cookie value set on a response. */
  const cookies: string[] = [];
  /** Every answer body (integration credentials are never in any, unlike the tokens shown once). */
  const answers: string[] = [];

  let github: LoopbackGithub;
  let smtp: LoopbackSmtp;

  beforeAll(async () => {
    // Social sign-in: a provider (GitHub's protocol on loopback) whose client secret is a canary.
    // Mail goes out over SMTP (a loopback server requiring a login whose password is a canary).
    smtp = await startSmtp({ auth: { user: 'palisade', password: SMTP_PASSWORD } });
    github = await startGithub({ clients: [{ clientId: 'canary-client', clientSecret: SOCIAL_CLIENT_SECRET, redirectUri: `${ORIGIN}/api/auth/social/github/callback` }] });
    h = await createTestApp(engine, {
      config: {
        PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true', SOCIAL_GITHUB_CLIENT_ID: 'canary-client', SOCIAL_GITHUB_CLIENT_SECRET: SOCIAL_CLIENT_SECRET,
        SOCIAL_GITHUB_AUTHORIZE_URL: `${github.url}/login/oauth/authorize`, SOCIAL_GITHUB_TOKEN_URL: `${github.url}/login/oauth/access_token`,
        SOCIAL_GITHUB_API_URL: github.url,
        SMTP_URL: smtp.url, SMTP_TIMEOUT_MS: '1000',
      },
    });
    for (const [name, value] of Object.entries({
      PASSWORD, BAD_PASSWORD, CHANGED_PASSWORD, RESET_PASSWORD, WEAK_PASSWORD, SOCIAL_CLIENT_SECRET, SMTP_PASSWORD, VAULT_VALUE, VAULT_ROTATED, VAULT_REFUSED,
    })) {
      secrets.set(name, value);
    }
  });
  afterAll(async () => {
    await h?.close();
    await github?.close();
    await smtp?.close();
  });

  async function call(method: Method, url: string, opts: { cookie?: string; payload?: unknown } = {}): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { origin: ORIGIN, 'user-agent': 'canary-test' };
    if (opts.cookie) headers.cookie = opts.cookie;
    const res = await h.built.app.inject({ method, url, headers, ...(opts.payload !== undefined ? { payload: opts.payload as object } : {}) });
    if (String(res.headers['content-type'] ?? '').startsWith('application/problem+json')) problems.push(res.body);
    answers.push(res.body);
    const set = res.cookies.find((c) => c.name === h.built.cookie.name && c.value);
    if (set) {
      cookies.push(set.value);
      secrets.set(`cookie#${cookies.length}`, set.value);
      secrets.set(`cookie-secret#${cookies.length}`, set.value.slice(0, 43));
    }
    return res;
  }

  function sessionOf(res: LightMyRequestResponse): string {
    const set = res.cookies.find((c) => c.name === h.built.cookie.name && c.value);
    if (!set) throw new Error(`no session cookie on ${res.statusCode} ${res.body}`);
    return `${h.built.cookie.name}=${set.value}`;
  }

  async function outbox(to: string): Promise<string[]> {
    const mails = await h.t.db.withSystem('t', (tx) => h.built.services.mail.read(tx, to));
    return mails.map((m) => m.body);
  }

  function expectProblem(res: LightMyRequestResponse, status: number, code: string): void {
    expect(res.statusCode, res.body).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json()).toMatchObject({ status, code });
  }

  it('runs every credential flow with canary values', async () => {
    // Registration (and a weak and a duplicate attempt), then the verification link.
    expectProblem(await call('POST', '/api/auth/register', {
      payload: { email: 'weak.canary@example.test', password: WEAK_PASSWORD, name: 'Weak' },
    }), 422, 'weak_password');
    const registered = await call('POST', '/api/auth/register', { payload: { email: EMAIL, password: PASSWORD, name: 'Canary User' } });
    expect(registered.statusCode, registered.body).toBe(202);
    const duplicate = await call('POST', '/api/auth/register', { payload: { email: EMAIL, password: BAD_PASSWORD, name: 'Again' } });
    expect([duplicate.statusCode, duplicate.body]).toEqual([202, registered.body]);
    expectProblem(await call('POST', '/api/auth/login', { payload: { email: EMAIL, password: PASSWORD } }), 403, 'email_unverified');
    expect((await call('POST', '/api/auth/verify-email/resend', { payload: { email: EMAIL } })).statusCode).toBe(202);
    const verificationToken = /pal_emv_[A-Za-z0-9_-]{43}/.exec((await outbox(EMAIL)).find((b) => b.includes('pal_emv_')) ?? '')?.[0] ?? '';
    expect(verificationToken).toHaveLength(8 + 43);
    secrets.set('verificationToken', verificationToken);
    secrets.set('verificationSecret', verificationToken.slice(8));
    expectProblem(await call('POST', '/api/auth/verify-email', { payload: { token: verificationToken, password: BAD_PASSWORD } }), 401, 'invalid_credentials');
    expect((await call('POST', '/api/auth/verify-email', { payload: { token: verificationToken, password: PASSWORD } })).statusCode).toBe(204);
    expectProblem(await call('POST', '/api/auth/verify-email', { payload: { token: verificationToken, password: PASSWORD } }), 400, 'token_invalid');

    // Login, failed logins (known and unknown email).
    const loggedIn = await call('POST', '/api/auth/login', { payload: { email: EMAIL, password: PASSWORD } });
    expect(loggedIn.statusCode, loggedIn.body).toBe(200);
    let session = sessionOf(loggedIn);
    expectProblem(await call('POST', '/api/auth/login', { payload: { email: EMAIL, password: BAD_PASSWORD } }), 401, 'invalid_credentials');
    expectProblem(await call('POST', '/api/auth/login', { payload: { email: 'nobody@example.test', password: BAD_PASSWORD } }), 401, 'invalid_credentials');
    // Login with the session cookie of the previous login (fixation path) and a garbage one.
    const relogin = await call('POST', '/api/auth/login', { cookie: session, payload: { email: EMAIL, password: PASSWORD } });
    expect(relogin.statusCode).toBe(200);
    session = sessionOf(relogin);

    // Password change: wrong current password, weak new one, then the real change.
    expectProblem(await call('POST', '/api/me/password', { cookie: session, payload: { currentPassword: BAD_PASSWORD, newPassword: CHANGED_PASSWORD } }),
      401, 'invalid_credentials');
    expectProblem(await call('POST', '/api/me/password', { cookie: session, payload: { currentPassword: PASSWORD, newPassword: WEAK_PASSWORD } }),
      422, 'weak_password');
    const changed = await call('POST', '/api/me/password', { cookie: session, payload: { currentPassword: PASSWORD, newPassword: CHANGED_PASSWORD } });
    expect(changed.statusCode, changed.body).toBe(204);
    session = sessionOf(changed);
    expect((await call('GET', '/api/me', { cookie: session })).statusCode).toBe(200);

    // Password reset: request (known and unknown email), confirm, replay.
    expect((await call('POST', '/api/auth/password-reset/request', { payload: { email: EMAIL } })).statusCode).toBe(202);
    expect((await call('POST', '/api/auth/password-reset/request', { payload: { email: 'nobody@example.test' } })).statusCode).toBe(202);
    const resetMail = (await outbox(EMAIL)).find((b) => b.includes('pal_pwr_')) ?? '';
    const resetToken = /pal_pwr_[A-Za-z0-9_-]{43}/.exec(resetMail)?.[0] ?? '';
    expect(resetToken).toHaveLength(8 + 43);
    secrets.set('resetToken', resetToken);
    secrets.set('resetSecret', resetToken.slice(8));
    expectProblem(await call('POST', '/api/auth/password-reset/confirm', { payload: { token: resetToken, password: WEAK_PASSWORD } }), 422, 'weak_password');
    const tampered = `${resetToken.slice(0, -1)}${resetToken.endsWith('A') ? 'B' : 'A'}`;
    expectProblem(await call('POST', '/api/auth/password-reset/confirm', { payload: { token: tampered, password: RESET_PASSWORD } }), 400, 'token_invalid');
    const confirmed = await call('POST', '/api/auth/password-reset/confirm', { payload: { token: resetToken, password: RESET_PASSWORD } });
    expect(confirmed.statusCode, confirmed.body).toBe(204);
    expectProblem(await call('POST', '/api/auth/password-reset/confirm', { payload: { token: resetToken, password: RESET_PASSWORD } }), 400, 'token_invalid');
    // The reset ended every session.
    expectProblem(await call('GET', '/api/me', { cookie: session }), 401, 'unauthenticated');
    session = sessionOf(await call('POST', '/api/auth/login', { payload: { email: EMAIL, password: RESET_PASSWORD } }));

    // Invitation: created by acme's owner, accepted by the canary user.
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const acme = h.orgId('acme');
    const invited = await call('POST', `/api/orgs/${acme}/invitations`, { cookie: owner, payload: { email: EMAIL, role: 'member' } });
    expect(invited.statusCode, invited.body).toBe(201);
    const invitationToken = String((invited.json() as { token: string }).token);
    expect(invitationToken).toMatch(/^pal_inv_[0-9a-f-]{36}\.[0-9a-f-]{36}\.[A-Za-z0-9_-]{43}$/);
    const mailed = (await outbox(EMAIL)).find((b) => b.includes('pal_inv_')) ?? '';
    expect(mailed).toContain(invitationToken);
    secrets.set('invitationToken', invitationToken);
    secrets.set('invitationSecret', invitationToken.slice(-43));
    const forged = `${invitationToken.slice(0, -1)}${invitationToken.endsWith('A') ? 'B' : 'A'}`;
    expectProblem(await call('POST', '/api/invitations/accept', { cookie: session, payload: { token: forged } }), 400, 'token_invalid');
    // Someone else holding the token cannot use it.
    const stranger = await h.cookieFor(h.user('globex', 'viewer').email);
    expectProblem(await call('POST', '/api/invitations/accept', { cookie: stranger, payload: { token: invitationToken } }), 400, 'token_invalid');
    const accepted = await call('POST', '/api/invitations/accept', { cookie: session, payload: { token: invitationToken } });
    expect(accepted.statusCode, accepted.body).toBe(200);
    expect(accepted.json()).toEqual({ orgId: acme });
    // Privileges changed: the next request swaps the session id (and refuses the replayed token).
    const replay = await call('POST', '/api/invitations/accept', { cookie: session, payload: { token: invitationToken } });
    expectProblem(replay, 400, 'token_invalid');
    session = sessionOf(replay);

    // Sign out; the old cookie is dead.
    expect((await call('POST', '/api/auth/logout', { cookie: session })).statusCode).toBe(204);
    expectProblem(await call('GET', '/api/me', { cookie: session }), 401, 'unauthenticated');

    // Machine credentials: an API key (used, misused, revoked) and a webhook signing secret (rotated).
    const key = await call('POST', `/api/orgs/${acme}/api-keys`, { cookie: owner, payload: { name: 'canary', kind: 'secret', permissions: ['projects:read'] } });
    expect(key.statusCode, key.body).toBe(201);
    const { token, key: keyView } = key.json() as { token: string; key: { id: string } };
    secrets.set('apiKey', token);
    secrets.set('apiKeyRandom', token.slice(7, 37));
    const withKey = (url: string, method: Method = 'GET', t = token) =>
      h.built.app.inject({ method, url, headers: { authorization: `Bearer ${t}` } }).then((res) => {
        if (String(res.headers['content-type'] ?? '').startsWith('application/problem+json')) problems.push(res.body);
        return res;
      });
    expect((await withKey(`/v1/orgs/${acme}/projects`)).statusCode).toBe(200);
    expectProblem(await withKey(`/v1/orgs/${acme}/projects`, 'POST'), 403, 'forbidden');
    // The last character changed, never to itself (1 in 62 keys end in any given character).
    const tamperedKey = `${token.slice(0, -1)}${token.endsWith('x') ? 'y' : 'x'}`;
    expectProblem(await withKey(`/v1/orgs/${acme}/projects`, 'GET', tamperedKey), 401, 'unauthenticated');
    expect((await call('DELETE', `/api/orgs/${acme}/api-keys/${keyView.id}`, { cookie: owner })).statusCode).toBe(204);
    expectProblem(await withKey(`/v1/orgs/${acme}/projects`), 401, 'unauthenticated');
    const hook = await call('POST', `/api/orgs/${acme}/webhooks`, { cookie: owner, payload: { url: 'https://hooks.example.com/canary', events: ['*'] } });
    expect(hook.statusCode, hook.body).toBe(201);
    const { secret, endpoint } = hook.json() as { secret: string; endpoint: { id: string } };
    secrets.set('webhookSecret', secret);
    secrets.set('webhookSecretKey', secret.slice(6));
    const rotated = await call('POST', `/api/orgs/${acme}/webhooks/${endpoint.id}/rotate-secret`, { cookie: owner });
    secrets.set('webhookSecretRotated', String((rotated.json() as { secret: string }).secret).slice(6));
    // An audit stream's signing secret, created and rotated (issue 14).
    const stream = await call('POST', `/api/orgs/${acme}/audit/streams`, { cookie: owner, payload: { kind: 'https', url: 'https://siem.example.com/canary' } });
    expect(stream.statusCode, stream.body).toBe(201);
    const created = stream.json() as { secret: string; stream: { id: string } };
    secrets.set('streamSecret', created.secret.slice(6));
    const rotatedStream = await call('POST', `/api/orgs/${acme}/audit/streams/${created.stream.id}/rotate-secret`, { cookie: owner });
    secrets.set('streamSecretRotated', String((rotatedStream.json() as { secret: string }).secret).slice(6));
    // The receiver's Authorization header: set, refused (a line break: the problem must not quote it), replaced.
    const streamAuth = 'Bearer CANARY-stream-auth-5e9d1c7a';
    secrets.set('streamAuthorization', streamAuth.slice(7));
    const streamUrl = `/api/orgs/${acme}/audit/streams/${created.stream.id}`;
    expectProblem(await call('PATCH', streamUrl, { cookie: owner, payload: { authorization: `${streamAuth}\r\nX-Injected: 1` } }), 400, 'validation_failed');
    expect((await call('PATCH', streamUrl, { cookie: owner, payload: { authorization: streamAuth } })).statusCode).toBe(200);
    expect((await call('GET', streamUrl, { cookie: owner })).statusCode).toBe(200);

    // Integration credentials: stored, refused (too long: the problem must not quote it), replaced,
    // read back every way the API offers, and opened by host code that quotes the value in its
    // use report and in the error it throws.
    const vaultUrl = `/api/orgs/${acme}/integrations/credentials`;
    expectProblem(await call('POST', vaultUrl, { cookie: owner, payload: { name: 'canary-psa', kind: 'api_token', secret: `${VAULT_REFUSED}${'x'.repeat(9000)}` } }),
      400, 'validation_failed');
    expectProblem(await call('POST', vaultUrl, { cookie: owner, payload: { name: 'Canary PSA', kind: 'api_token', secret: VAULT_REFUSED } }), 400, 'validation_failed');
    const stored = await call('POST', vaultUrl, { cookie: owner, payload: { name: 'canary-psa', kind: 'api_token', description: 'canary', secret: VAULT_VALUE } });
    expect(stored.statusCode, stored.body).toBe(201);
    const credentialId = String((stored.json() as { id: string }).id);
    expectProblem(await call('POST', vaultUrl, { cookie: owner, payload: { name: 'canary-psa', kind: 'api_token', secret: VAULT_REFUSED } }), 409, 'conflict');
    const vault = h.built.services.vault;
    expect(await vault.use(acme, 'canary-psa', { by: 'canary-sync' }, async (value, report) => {
      report.note(`token ${value} accepted`);
      return value;
    })).toBe(VAULT_VALUE);
    expect((await call('POST', `${vaultUrl}/${credentialId}/replace`, { cookie: owner, payload: { secret: VAULT_ROTATED, reason: 'canary rotation' } })).statusCode).toBe(200);
    await expect(vault.use(acme, 'canary-psa', { by: 'canary-sync' }, async (value) => { throw new Error(`the PSA refused ${value}`); })).rejects.toThrow();
    for (const path of ['', `/${credentialId}`, `/${credentialId}/rotations`, `/${credentialId}/uses`]) {
      expect((await call('GET', `${vaultUrl}${path}`, { cookie: owner })).statusCode).toBe(200);
    }
    expect((await call('DELETE', `${vaultUrl}/${credentialId}`, { cookie: owner })).statusCode).toBe(204);
    expectProblem(await call('GET', `${vaultUrl}/${credentialId}`, { cookie: owner }), 404, 'not_found');

    // review R4 finding 8: the metrics listener's bearer token, right and wrong.
    const metricsToken = 'CANARY-metrics-0b7e4d2a9c1f5e8a3d6b';
    secrets.set('metricsToken', metricsToken);
    const metricsServer = await createMetricsServer({ metrics: h.built.metrics, token: metricsToken, logger: h.logger });
    try {
      const scrape = async (authorization: string) => {
        const res = await metricsServer.inject({ method: 'GET', url: '/metrics', headers: { authorization } });
        if (String(res.headers['content-type'] ?? '').startsWith('application/problem+json')) problems.push(res.body);
        return res;
      };
      expect((await scrape(`Bearer ${metricsToken}`)).statusCode).toBe(200);
      expectProblem(await scrape(`Bearer ${metricsToken}-wrong`), 401, 'unauthenticated');
      expectProblem(await scrape(metricsToken), 401, 'unauthenticated');
    } finally {
      await metricsServer.close();
    }
    expect(h.logs.join('')).toContain('"msg":"metrics request"');

    // Social sign-in: a new account, a refused callback (wrong state) and a replayed code; the
    // provider's codes and access tokens are secrets too, and the client secret travels only to
    // the token endpoint.
    github.accounts.set('canary', { id: 4242, login: 'canary', emails: [{ email: SOCIAL_EMAIL, primary: true, verified: true }] });
    const socialFlow = async () => {
      const started = await call('GET', '/api/auth/social/github/start');
      expect(started.statusCode, started.body).toBe(302);
      const flow = started.cookies.find((c) => c.name === '__Host-palisade_sso')?.value ?? '';
      return { url: await signInAtGithub(String(started.headers.location), 'canary'), flow };
    };
    const social = await socialFlow();
    const wrongState = new URL(social.url);
    wrongState.searchParams.set('state', 'x'.repeat(43));
    expectProblem(await call('GET', `${wrongState.pathname}${wrongState.search}`, { cookie: `__Host-palisade_sso=${social.flow}` }), 401, 'sso_failed');
    const socialIn = await call('GET', `${social.url.pathname}${social.url.search}`, { cookie: `__Host-palisade_sso=${social.flow}` });
    expect(socialIn.statusCode, socialIn.body).toBe(302);
    sessionOf(socialIn);
    expectProblem(await call('GET', `${social.url.pathname}${social.url.search}`, { cookie: `__Host-palisade_sso=${social.flow}` }), 401, 'sso_failed');
    expect(github.tokenRequests.at(-1)?.get('client_secret')).toBe(SOCIAL_CLIENT_SECRET);
    github.issued.codes.forEach((c, i) => secrets.set(`socialCode#${i}`, c));
    github.issued.tokens.forEach((t, i) => secrets.set(`socialAccessToken#${i}`, t));
    expect(github.issued.tokens.length).toBeGreaterThanOrEqual(1);

    // The mail of every flow above goes out: first refused at AUTH (the server wants another
    // password), then refused per recipient (550), then delivered; each failure is logged.
    const mailWorker = h.built.services.mailWorker;
    if (!mailWorker) throw new Error('SMTP_URL set, yet no mail worker');
    smtp.auth = { user: 'palisade', password: 'CANARY-other-password' };
    expect(await mailWorker.drain()).toBeGreaterThan(0);
    expect(h.logs.join('')).toContain('"error":"auth"');
    smtp.auth = { user: 'palisade', password: SMTP_PASSWORD };
    smtp.mode = 'refuse';
    h.clock.advance(10 * 60_000);
    expect(await mailWorker.drain()).toBeGreaterThan(0);
    expect(h.logs.join('')).toContain('"error":"smtp_550"');
    smtp.mode = 'accept';
    h.clock.advance(10 * 60_000);
    await mailWorker.drain();
    expect(smtp.authenticated).toBeGreaterThan(0);
    expect(smtp.received.flatMap((m) => m.to)).toContain(EMAIL);

    expect(cookies.length).toBeGreaterThanOrEqual(5);
    expect(problems.length).toBeGreaterThanOrEqual(12);
  });

  it('never puts a canary, a cookie or a token into a tenant export of the org the flows ran in', async () => {
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const acme = h.orgId('acme');
    const requested = await call('POST', `/api/orgs/${acme}/exports`, { cookie: owner });
    expect(requested.statusCode, requested.body).toBe(202);
    await h.built.services.exportJob.drain();
    const link = await call('POST', `/api/orgs/${acme}/exports/${requested.json<{ id: string }>().id}/link`, { cookie: owner });
    expect(link.statusCode, link.body).toBe(201);
    const url = link.json<{ url: string }>().url;
    // The link's token is a secret too: the log test below looks for it.
    secrets.set('EXPORT_LINK', new URL(url, ORIGIN).searchParams.get('token') ?? '');
    const archive = await h.built.app.inject({ method: 'GET', url });
    expect(archive.statusCode).toBe(200);
    const text = archive.rawPayload.toString('utf8');
    expect(text).toContain('"action": "credential.created"');
    expect(leaks(text)).toEqual([]);
  });

  function leaks(haystack: string): string[] {
    return [...secrets.entries()].filter(([, v]) => v.length >= 8 && haystack.includes(v)).map(([k]) => k);
  }

  it('never logs a canary, a cookie or a token', () => {
    expect(secrets.size).toBeGreaterThanOrEqual(5 + 4 + 2 * 5);
    const logs = h.logs.join('');
    expect(logs).toContain('"msg":"request"');
    expect(logs).toContain('"path":"/api/me"');
    expect(leaks(logs)).toEqual([]);
  });

  it('never echoes a canary, a cookie or a token in a problem answer', () => {
    expect(problems.length).toBeGreaterThanOrEqual(12);
    for (const body of problems) expect(leaks(body), body).toEqual([]);
  });

  it('never answers with an integration credential’s value, whatever the route', () => {
    const vaultValues = new Map([...secrets].filter(([k]) => k.startsWith('VAULT_')));
    expect(vaultValues.size).toBe(3);
    const inAnswers = [...vaultValues].filter(([, v]) => answers.some((a) => a.includes(v))).map(([k]) => k);
    expect(answers.some((a) => a.includes('canary-psa'))).toBe(true);
    expect(inAnswers).toEqual([]);
  });

  it('never writes a canary, a cookie or a token into the audit trail', async () => {
    const events = await auditSelect<Record<string, unknown>>(h, '*', ``);
    const actions = new Set(events.map((e) => String(e.action)));
    for (const a of ['auth.registered', 'auth.registration_duplicate', 'auth.email_verification_requested', 'auth.email_verification_failed',
      'auth.email_verified', 'auth.login', 'auth.login_failed', 'auth.password_change_failed', 'auth.password_changed',
      'auth.password_reset_requested', 'auth.password_reset', 'invitation.created', 'invitation.accepted', 'auth.logout',
      'auth.social_account_created', 'auth.social_identity_linked', 'auth.social_failed',
      'credential.created', 'credential.replaced', 'credential.used', 'credential.deleted']) {
      expect(actions, a).toContain(a);
    }
    expect(leaks(JSON.stringify(events))).toEqual([]);
  });

  it('keeps no canary, cookie or token in clear anywhere in the database', async () => {
    const tables = await h.t.owner.query<{ tablename: string }>(
      `select tablename from pg_tables where schemaname = 'public' order by tablename`,
    );
    expect(tables.map((t) => t.tablename)).toEqual(expect.arrayContaining([
      'users', 'sessions', 'password_resets', 'invitations', 'mail_outbox', 'integration_credentials', 'integration_credential_uses',
    ]));
    // The use log kept the host's report, with the value it quoted redacted.
    expect((await h.t.owner.query<{ message: string }>('select message from integration_credential_uses order by use_no')).map((r) => r.message))
      .toEqual(['token [redacted] accepted', 'failed: Error']);
    for (const { tablename } of tables) {
      const rows = await h.t.owner.query<Record<string, unknown>>(`select * from "${tablename}"`);
      expect(leaks(JSON.stringify(rows)), tablename).toEqual([]);
    }
  });

  it('answers an unhandled error with the request id only, and logs it for the operator', async () => {
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const url = `/api/orgs/${h.orgId('acme')}/projects`;
    const marker = 'INTERNAL-detail-5b1e0c77';
    const spy = vi.spyOn(h.built.services.projects, 'create').mockRejectedValueOnce(new Error(`driver failed near ${marker}`));
    const res = await call('POST', url, { cookie: owner, payload: { name: 'Boom' } });
    spy.mockRestore();
    expect(res.statusCode).toBe(500);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const body = res.json() as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['code', 'requestId', 'status', 'title', 'type']);
    expect(body).toMatchObject({ type: 'https://palisade.dev/problems/internal', title: 'Internal error', status: 500, code: 'internal' });
    expect(body.requestId).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect(res.body).not.toContain(marker);
    expect(res.body).not.toContain('driver failed');
    const line = h.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.reqId === body.requestId && l.msg === 'unhandled error');
    expect(line, 'the operator finds the error by its request id').toBeDefined();
    expect(JSON.stringify(line)).toContain(marker);
    // The service works again once the fault is gone.
    expect((await call('POST', url, { cookie: owner, payload: { name: 'After' } })).statusCode).toBe(201);
  });

  it('answers a mutation that skipped its audit event with a 500 showing only the request id', async () => {
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const url = `/api/orgs/${h.orgId('acme')}/projects`;
    const spy = vi.spyOn(h.built.services.projects, 'create').mockResolvedValueOnce({ id: '00000000-0000-4000-8000-000000000001', name: 'Ghost', createdAt: new Date(0).toISOString() });
    const res = await call('POST', url, { cookie: owner, payload: { name: 'Ghost' } });
    spy.mockRestore();
    expect(res.statusCode).toBe(500);
    const body = res.json() as Record<string, unknown>;
    expect(Object.keys(body).sort()).toEqual(['code', 'requestId', 'status', 'title', 'type']);
    expect(body.code).toBe('internal');
    expect(res.body).not.toContain('audit');
    expect(res.body).not.toContain('Ghost');
  });
});
