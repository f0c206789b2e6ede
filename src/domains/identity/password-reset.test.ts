import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp, type Problem } from '../../../test/support/app.js';
import { signUp } from '../../../test/support/accounts.js';
import { ENGINES } from '../../../test/support/db.js';
import { auditSelect } from '../../../test/support/evidence.js';

const SYSTEM_ORG = '00000000-0000-0000-0000-000000000000';
const TOKEN_RE = /pal_pwr_[A-Za-z0-9_-]{43}/g;
const NEW_PASSWORD = 'a brand new passphrase 42';

describe.each(ENGINES)('password reset on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  const post = (url: string, payload: object) => h.built.app.inject({ method: 'POST', url, headers: { origin: ORIGIN }, payload });
  const requestReset = (email: string) => post('/api/auth/password-reset/request', { email });
  const confirm = (token: string, password: string) => post('/api/auth/password-reset/confirm', { token, password });
  const outbox = (email: string) => h.t.db.withSystem('test', (tx) => h.built.services.mail.read(tx, email));
  const tokensFor = async (email: string): Promise<string[]> => (await outbox(email)).flatMap((m) => m.body.match(TOKEN_RE) ?? []);
  const latestToken = async (email: string): Promise<string> => {
    const all = await tokensFor(email);
    const last = all.at(-1);
    if (!last) throw new Error(`no reset mail for ${email}`);
    return last;
  };
  const me = (cookie: string) => h.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie } });
  const loginStatus = async (email: string, password: string) =>
    (await post('/api/auth/login', { email, password })).statusCode;

  it('answers 202 with the same body for known and unknown emails; mails only known ones', async () => {
    const known = await requestReset('member@acme.test');
    const unknown = await requestReset('nobody-here@acme.test');
    expect(known.statusCode).toBe(202);
    expect(unknown.statusCode).toBe(202);
    expect(unknown.json()).toEqual(known.json());
    expect(known.json()).toEqual({ status: 'If the address has an account, a reset link is on its way.' });

    expect(await outbox('nobody-here@acme.test')).toEqual([]);
    const mails = await outbox('member@acme.test');
    expect(mails).toHaveLength(1);
    expect(mails[0]?.subject).toBe('Reset your Palisade password');
    expect(mails[0]?.body).toMatch(/^Reset your password: https:\/\/palisade\.test\/reset-password#token=pal_pwr_[A-Za-z0-9_-]{43}\n/);

    const events = await auditSelect<{ details: { email: string; known: boolean } }>(h, ['details'], `where org_id = $1 and action = 'auth.password_reset_requested' order by seq`, [SYSTEM_ORG],
    );
    expect(events.map((e) => e.details)).toEqual([
      { email: 'member@acme.test', known: true },
      { email: 'nobody-here@acme.test', known: false },
    ]);
  });

  it('stores the mail body sealed: the raw outbox row does not contain the token', async () => {
    await requestReset('viewer@acme.test');
    const token = await latestToken('viewer@acme.test');
    const toIndex = await h.t.db.withSystem('test', (tx) => h.built.services.sealer.emailIndex(tx, 'viewer@acme.test'));
    const raw = await h.t.owner.query<{ to_sealed: string; body_sealed: string }>('select to_sealed, body_sealed from mail_outbox where to_index = $1', [toIndex]);
    expect(raw).toHaveLength(1);
    expect(raw[0]?.to_sealed).not.toContain('viewer@acme.test');
    const sealed = raw[0]?.body_sealed ?? '';
    expect(sealed.length).toBeGreaterThan(60);
    expect(sealed).not.toContain(token);
    expect(sealed).not.toContain(token.slice('pal_pwr_'.length));
    expect(sealed).not.toContain('reset-password');
    // The database keeps only a hash of the token.
    const resets = await h.t.owner.query<{ token_hash: string }>('select token_hash from password_resets', []);
    expect(JSON.stringify(resets)).not.toContain(token.slice('pal_pwr_'.length));
  });

  it('sets the new password, ends every session, and the token works once', async () => {
    const user = h.user('acme', 'admin');
    const cookieA = await h.login(user);
    const cookieB = await h.cookieFor(user.email);
    await requestReset(user.email);
    const token = await latestToken(user.email);

    const done = await confirm(token, NEW_PASSWORD);
    expect(done.statusCode).toBe(204);
    expect((await me(cookieA)).statusCode).toBe(401);
    expect((await me(cookieB)).statusCode).toBe(401);
    const userId = await h.userId(user.email);
    const live = await h.t.owner.query<{ n: number }>(
      `select count(*)::int as n from sessions s where s.user_id = $1 and s.revoked_at is null`, [userId],
    );
    expect(live[0]?.n).toBe(0);
    const reasons = await h.t.owner.query<{ revoked_reason: string }>(
      `select distinct s.revoked_reason from sessions s where s.user_id = $1`, [userId],
    );
    expect(reasons).toEqual([{ revoked_reason: 'password_reset' }]);

    expect(await loginStatus(user.email, user.password)).toBe(401);
    expect(await loginStatus(user.email, NEW_PASSWORD)).toBe(200);

    const replay = await confirm(token, 'yet another passphrase 7');
    expect(replay.statusCode).toBe(400);
    expect(replay.json<Problem>()).toMatchObject({ code: 'token_invalid', status: 400 });
    expect(await loginStatus(user.email, NEW_PASSWORD)).toBe(200);

    const evidence = await h.t.owner.query<{ n: number }>(
      `select count(*)::int as n from audit_events where org_id = $1 and action = 'auth.password_reset'`, [SYSTEM_ORG],
    );
    expect(evidence[0]?.n).toBe(1);
  });

  it('using one token invalidates the user\u2019s other outstanding tokens', async () => {
    const user = h.user('globex', 'member');
    await requestReset(user.email);
    await requestReset(user.email);
    const [first, second] = await tokensFor(user.email);
    expect(first).toBeDefined();
    expect(second).toBeDefined();
    expect(first).not.toBe(second);
    expect((await confirm(second as string, NEW_PASSWORD)).statusCode).toBe(204);
    const stale = await confirm(first as string, 'an attacker passphrase 99');
    expect(stale.statusCode).toBe(400);
    expect(stale.json<Problem>().code).toBe('token_invalid');
    expect(await loginStatus(user.email, NEW_PASSWORD)).toBe(200);
  });

  it('expires the token after 30 minutes', async () => {
    const early = h.user('globex', 'viewer');
    const late = h.user('globex', 'admin');
    await requestReset(early.email);
    await requestReset(late.email);
    const earlyToken = await latestToken(early.email);
    const lateToken = await latestToken(late.email);
    h.clock.advance(29 * 60_000);
    expect((await confirm(earlyToken, NEW_PASSWORD)).statusCode).toBe(204);
    h.clock.advance(2 * 60_000);
    const res = await confirm(lateToken, NEW_PASSWORD);
    expect(res.statusCode).toBe(400);
    expect(res.json<Problem>().code).toBe('token_invalid');
    expect(await loginStatus(late.email, late.password)).toBe(200);
  });

  it('refuses tampered, truncated and foreign-format tokens with 400 token_invalid', async () => {
    const user = h.user('globex', 'owner');
    await requestReset(user.email);
    const token = await latestToken(user.email);
    const last = token.at(-1) === 'A' ? 'B' : 'A';
    const mid = token.length - 20;
    const variants = [
      token.slice(0, -1) + last,
      token.slice(0, mid) + (token[mid] === 'x' ? 'y' : 'x') + token.slice(mid + 1),
      token.slice(0, -1),
      `${token}A`,
      token.replace('pal_pwr_', 'pal_pwx_'),
      token.slice('pal_pwr_'.length),
      'pal_pwr_' + '\u0000'.repeat(43),
    ];
    for (const v of variants) {
      const res = await confirm(v, NEW_PASSWORD);
      expect(res.statusCode, v).toBe(400);
      expect(res.json<Problem>().code).toBe('token_invalid');
    }
    // The genuine token still works after all that.
    expect((await confirm(token, NEW_PASSWORD)).statusCode).toBe(204);
  });

  it('refuses a weak new password with 422 and leaves the token usable', async () => {
    const user = h.user('acme', 'owner');
    await requestReset(user.email);
    const token = await latestToken(user.email);
    for (const weak of ['short', 'password1234', 'qwertyuiop123']) {
      const res = await confirm(token, weak);
      expect(res.statusCode).toBe(422);
      expect(res.json<Problem>().code).toBe('weak_password');
    }
    expect(await loginStatus(user.email, user.password)).toBe(200);
    expect((await confirm(token, NEW_PASSWORD)).statusCode).toBe(204);
  });

  it('answers 400 for malformed request bodies', async () => {
    for (const payload of [{}, { email: 'not-an-email' }, { email: 'a@b.co', extra: true }]) {
      const res = await post('/api/auth/password-reset/request', payload);
      expect(res.statusCode).toBe(400);
      expect(res.json<Problem>().code).toBe('validation_failed');
    }
    for (const payload of [{ token: '' , password: NEW_PASSWORD }, { token: 'x'.repeat(201), password: NEW_PASSWORD }, { token: 'pal_pwr_x' }]) {
      const res = await post('/api/auth/password-reset/confirm', payload);
      expect(res.statusCode).toBe(400);
      expect(res.json<Problem>().code).toBe('validation_failed');
    }
  });

  it('a completed reset ends a lockout: the new password signs in at once', async () => {
    const u = { email: `locked-${Date.now()}@example.test`, password: 'an-original-long-passphrase-1' };
    await signUp(h, { ...u, name: 'Locked' });
    for (let i = 0; i < 5; i++) expect(await loginStatus(u.email, 'not-the-password-at-all')).toBe(401);
    expect(await loginStatus(u.email, u.password)).toBe(401); // locked
    expect((await requestReset(u.email)).statusCode).toBe(202);
    const next = 'a-fresh-long-passphrase-after-lockout';
    expect((await confirm(await latestToken(u.email), next)).statusCode).toBe(204);
    expect(await loginStatus(u.email, next)).toBe(200);
  });
});
