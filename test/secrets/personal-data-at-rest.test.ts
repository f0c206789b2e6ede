import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { latestVerificationToken, mailTo } from '../support/accounts.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { call, sessionFrom } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { tablesHolding } from '../support/raw-tables.js';

/**
 * Issue 14, "personal data sealed at rest": after a person registers, verifies, signs in (and
 * fails to), asks for a reset and a sign-in link, is invited and accepts, from a known address
 * and browser, no table holds their address, name, network address or user agent in clear. The
 * lookups that need the address (sign-in, registration, reset, magic link, invitation) still find
 * the account through the keyed blind index, in any letter case.
 */
describe.each(ENGINES)('personal data at rest on %s', (engine) => {
  let h: TestApp;
  const ip = '198.51.100.73';
  const userAgent = 'PrivacyProbe/7.3 (at-rest test; Zelda)';
  const email = 'zelda.quartermaine@privacy-probe.example';
  const name = 'Zelda Quartermaine';
  const invitee = 'ignatius.invitee@privacy-probe.example';
  const password = 'Zelda-at-rest-passphrase-2026';
  const post = (url: string, payload: object, cookie?: string) =>
    call(h, 'POST', url, { payload, ip, headers: { 'user-agent': userAgent }, ...(cookie ? { cookie } : {}) });

  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  it('keeps no address, name, client address or user agent in clear, and every lookup still finds the account', async () => {
    // Registration (a new address), and again before it is verified (the lookup finds the taken
    // address: a second verification mail rather than a second account).
    expect((await post('/api/auth/register', { email, password, name })).statusCode).toBe(202);
    expect((await post('/api/auth/register', { email: email.toUpperCase(), password, name })).statusCode).toBe(202);
    expect((await post('/api/auth/verify-email', { token: await latestVerificationToken(h, email), password })).statusCode).toBe(204);
    // Sign-in by address in another case, a wrong password, a reset and a magic link by address.
    const login = await post('/api/auth/login', { email: email.toUpperCase(), password });
    expect(login.statusCode, login.body).toBe(200);
    expect(login.json<{ user: { email: string; name: string } }>().user).toMatchObject({ email, name });
    const cookie = sessionFrom(login) ?? '';
    expect((await post('/api/auth/login', { email, password: 'not-the-password-at-all' })).statusCode).toBe(401);
    expect((await post('/api/auth/password-reset/request', { email: ` ${email.toUpperCase()}` })).statusCode).toBe(202);
    expect((await post('/api/auth/magic-link', { email })).statusCode).toBe(202);
    const subjects = (await mailTo(h, email)).map((m) => m.subject);
    expect(subjects).toEqual([
      'Verify your email address for Palisade', 'Verify your email address for Palisade', 'Reset your Palisade password', 'Your Palisade sign-in link',
    ]);

    // Invitations: one to a stranger, one to this person, who accepts (the address must match),
    // with a webhook endpoint subscribed to every event (its payloads are stored).
    const acme = h.orgId('acme');
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const hook = await post(`/api/orgs/${acme}/webhooks`, { url: 'https://hooks.example.com/in', events: ['*'] }, owner);
    expect(hook.statusCode, hook.body).toBe(201);
    expect((await post(`/api/orgs/${acme}/invitations`, { email: invitee, role: 'viewer' }, owner)).statusCode).toBe(201);
    const invited = await post(`/api/orgs/${acme}/invitations`, { email: email.toUpperCase(), role: 'viewer' }, owner);
    expect(invited.statusCode, invited.body).toBe(201);
    const accepted = await post('/api/invitations/accept', { token: invited.json<{ token: string }>().token }, cookie);
    expect(accepted.statusCode, accepted.body).toBe(200);
    // The org's lists open the sealed values for those allowed to read them.
    const members = await call(h, 'GET', `/api/orgs/${acme}/members`, { cookie: owner });
    expect(members.json<{ members: { email: string; name: string }[] }>().members).toContainEqual(expect.objectContaining({ email, name }));
    const me = await call(h, 'GET', '/api/me', { cookie });
    expect(me.statusCode).toBe(200);
    expect(me.body).toContain(email);

    // What a copy of the database, without the keys, shows (the scan itself finds what is in clear).
    expect(await tablesHolding(h, 'Acme Corp')).toContain('organizations');
    expect(await tablesHolding(h, 'invitation.created')).toContain('webhook_deliveries');
    for (const value of [email, name, invitee, ip, userAgent, h.user('acme', 'owner').email, 'acme owner']) {
      expect({ value, tables: await tablesHolding(h, value) }).toEqual({ value, tables: [] });
    }
  });
});
