/**
 * Two-step sign-in attacked: the password step must yield no session, the pending token must
 * open nothing but the second step, work once (also when raced), for its own user, for five
 * minutes, and only the latest one; the session issued after it must be a new one.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, SESSION_COOKIE, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';
import { audit } from '../support/evidence.js';
import { call, code, sessionFrom } from '../support/client.js';
import { enrollTotp, login, nextCode, pendingToken, verifyMfa, wrongCode } from '../support/mfa.js';
import { passwordUser } from '../support/users.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';

describe.each(ENGINES)('two-step sign-in on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  async function liveSessions(userId: string): Promise<number> {
    const [r] = await h.t.owner.query<{ n: number }>('select count(*)::int as n from sessions where user_id = $1 and revoked_at is null', [userId]);
    return r?.n ?? 0;
  }

  it('the password step answers a pending token and no cookie, and leaves evidence', async () => {
    const u = await passwordUser(h);
    await enrollTotp(h, u);
    const before = await liveSessions(u.id);
    const res = await login(h, u.email, u.password);
    expect(res.statusCode).toBe(200);
    const body = res.json<{ mfaRequired: boolean; mfaToken: string; methods: string[] }>();
    expect(body).toEqual({ mfaRequired: true, mfaToken: expect.stringMatching(/^pal_mfa_[A-Za-z0-9_-]{43}$/), methods: ['totp', 'recoveryCode'] });
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(await liveSessions(u.id)).toBe(before);
    // The pending state is stored hashed, not as the token.
    const dump = JSON.stringify(await h.t.owner.query('select * from mfa_challenges where user_id = $1', [u.id]));
    expect(dump).not.toContain(body.mfaToken.slice('pal_mfa_'.length));
    expect(await audit(h, SYSTEM_ORG_ID, 'auth.login_second_factor_pending', u.id)).toHaveLength(1);
  });

  it('the pending token is not a session: as a cookie, a bearer token or a header it opens nothing', async () => {
    const u = await passwordUser(h, h.orgId('acme'), 'admin');
    const { secret } = await enrollTotp(h, u);
    const token = await pendingToken(h, u);
    const attempts: Record<string, string>[] = [
      { cookie: `${SESSION_COOKIE}=${token}` },
      { cookie: `${SESSION_COOKIE}=${token.slice('pal_mfa_'.length)}` },
      { cookie: `palisade_session=${token}` },
      { authorization: `Bearer ${token}` },
      { 'x-mfa-token': token },
    ];
    const routes: ['GET' | 'POST' | 'PATCH', string, object?][] = [
      ['GET', '/api/me'],
      ['GET', '/api/me/mfa'],
      ['POST', '/api/me/mfa/recovery-codes'],
      ['POST', '/api/auth/step-up', { code: '000000' }],
      ['GET', `/api/orgs/${h.orgId('acme')}`],
      ['PATCH', `/api/orgs/${h.orgId('acme')}/settings`, { mfaRequired: false }],
    ];
    for (const headers of attempts) {
      for (const [method, url, payload] of routes) {
        const res = await call(h, method, url, { headers, payload });
        expect(res.statusCode, `${method} ${url} with ${Object.keys(headers)[0]}`).toBe(401);
      }
    }
    // ...and it still works for what it is for.
    expect((await verifyMfa(h, token, { code: nextCode(h, secret) })).statusCode).toBe(200);
  });

  it('calling session routes without finishing the second step: nothing reachable, no session created', async () => {
    const u = await passwordUser(h, h.orgId('acme'), 'owner');
    await enrollTotp(h, u);
    const before = await liveSessions(u.id);
    const res = await login(h, u.email, u.password);
    expect(res.statusCode).toBe(200);
    // A client that simply carries on as if signed in (whatever cookies the answer set).
    const cookie = res.cookies.map((c) => `${c.name}=${c.value}`).join('; ');
    for (const url of ['/api/me', `/api/orgs/${h.orgId('acme')}/members`, `/api/orgs/${h.orgId('acme')}/audit`]) {
      expect((await call(h, 'GET', url, cookie ? { cookie } : {})).statusCode, url).toBe(401);
    }
    expect(await liveSessions(u.id)).toBe(before);
  });

  it('a token works only for its own user: another user\u2019s valid code does not complete it', async () => {
    const a = await passwordUser(h);
    const b = await passwordUser(h);
    const ea = await enrollTotp(h, a);
    const eb = await enrollTotp(h, b);
    const tokenA = await pendingToken(h, a);
    const tokenB = await pendingToken(h, b);
    const codeB = nextCode(h, eb.secret);
    const cross = await verifyMfa(h, tokenA, { code: codeB });
    expect(cross.statusCode).toBe(401);
    expect(sessionFrom(cross)).toBeNull();
    const crossRc = await verifyMfa(h, tokenA, { recoveryCode: eb.recoveryCodes[0] as string });
    expect(crossRc.statusCode).toBe(401);
    // B's code was not spent by the failed attempt on A, nor B's recovery code.
    const okB = await verifyMfa(h, tokenB, { code: codeB });
    expect(okB.statusCode).toBe(200);
    expect(okB.json<{ user: { id: string } }>().user.id).toBe(b.id);
    const okA = await verifyMfa(h, tokenA, { code: nextCode(h, ea.secret) });
    expect(okA.statusCode).toBe(200);
    expect(okA.json<{ user: { id: string } }>().user.id).toBe(a.id);
    expect((await verifyMfa(h, await pendingToken(h, b), { recoveryCode: eb.recoveryCodes[0] as string })).statusCode).toBe(200);
  });

  it('single use: reused after success it is refused; two racing verifies with one token give one session', async () => {
    const u = await passwordUser(h);
    const { secret, recoveryCodes } = await enrollTotp(h, u);
    const token = await pendingToken(h, u);
    expect((await verifyMfa(h, token, { code: nextCode(h, secret) })).statusCode).toBe(200);
    const reuse = await verifyMfa(h, token, { code: nextCode(h, secret) });
    expect(reuse.statusCode).toBe(400);
    expect(code(reuse)).toBe('token_invalid');
    expect(sessionFrom(reuse)).toBeNull();

    // Same token, same code, in parallel.
    const before = await liveSessions(u.id);
    const t2 = await pendingToken(h, u);
    const c = nextCode(h, secret);
    const raced = await Promise.all([verifyMfa(h, t2, { code: c }), verifyMfa(h, t2, { code: c })]);
    expect(raced.filter((r) => r.statusCode === 200)).toHaveLength(1);
    expect(raced.filter((r) => sessionFrom(r))).toHaveLength(1);
    expect(await liveSessions(u.id)).toBe(before + 1);

    // Same token, two different valid proofs (two recovery codes) in parallel: still one session.
    const t3 = await pendingToken(h, u);
    const raced2 = await Promise.all([
      verifyMfa(h, t3, { recoveryCode: recoveryCodes[0] as string }),
      verifyMfa(h, t3, { recoveryCode: recoveryCodes[1] as string }),
      verifyMfa(h, t3, { code: nextCode(h, secret) }),
    ]);
    expect(raced2.filter((r) => r.statusCode === 200)).toHaveLength(1);
    expect(raced2.filter((r) => sessionFrom(r))).toHaveLength(1);
    expect(await liveSessions(u.id)).toBe(before + 2);
  });

  it('expires after five minutes, even with a right code', async () => {
    const u = await passwordUser(h);
    const { secret } = await enrollTotp(h, u);
    const token = await pendingToken(h, u);
    h.clock.advance(5 * 60_000 + 1000);
    const res = await verifyMfa(h, token, { code: nextCode(h, secret) });
    expect(res.statusCode).toBe(400);
    expect(code(res)).toBe('token_invalid');
    expect(sessionFrom(res)).toBeNull();
    // Just inside the five minutes it works.
    const t2 = await pendingToken(h, u);
    h.clock.advance(4 * 60_000 + 29_000); // + 30 s in nextCode: 4 min 59 s
    expect((await verifyMfa(h, t2, { code: nextCode(h, secret) })).statusCode).toBe(200);
  });

  it('a new password step supersedes the pending token; tampered and foreign-format tokens are refused', async () => {
    const u = await passwordUser(h);
    const { secret } = await enrollTotp(h, u);
    const old = await pendingToken(h, u);
    const latest = await pendingToken(h, u);
    const c = nextCode(h, secret);
    const stale = await verifyMfa(h, old, { code: c });
    expect(stale.statusCode).toBe(400);
    expect(code(stale)).toBe('token_invalid');
    const flipped = latest.slice(0, -1) + (latest.endsWith('A') ? 'B' : 'A');
    for (const t of [flipped, latest.replace('pal_mfa_', 'pal_pwr_'), `${latest}x`, 'pal_mfa_', 'x'.repeat(200)]) {
      const res = await verifyMfa(h, t, { code: c });
      expect(res.statusCode, t).toBe(400);
    }
    expect((await verifyMfa(h, latest, { code: c })).statusCode).toBe(200);
  });

  it('a pending sign-in dies with a password reset or "sign out everywhere" (session epoch)', async () => {
    const u = await passwordUser(h);
    const { secret } = await enrollTotp(h, u);
    const token = await pendingToken(h, u);
    await h.t.owner.query('update users set session_epoch = session_epoch + 1 where id = $1', [u.id]);
    const res = await verifyMfa(h, token, { code: nextCode(h, secret) });
    expect(res.statusCode).toBe(401);
    expect(sessionFrom(res)).toBeNull();
  });

  // In full: issues a brand-new session id after the second factor, revokes the one the browser
  // brought, and marks it MFA-verified
  it('issues a new, MFA-verified session id after the second factor and revokes the old one', async () => {
    const u = await passwordUser(h);
    const { secret } = await enrollTotp(h, u);
    const old = await h.cookieFor(u.email);
    const oldId = (await call(h, 'GET', '/api/me/sessions', { cookie: old })).json<{ sessions: { id: string; current: boolean }[] }>().sessions.find((s) => s.current)?.id;
    const token = (await login(h, u.email, u.password, { cookie: old })).json<{ mfaToken: string }>().mfaToken;
    // The browser's old session is untouched by the password step alone...
    expect((await call(h, 'GET', '/api/me', { cookie: old })).statusCode).toBe(200);
    const res = await verifyMfa(h, token, { code: nextCode(h, secret) }, { cookie: old });
    const fresh = sessionFrom(res);
    expect(fresh).not.toBeNull();
    expect(fresh).not.toBe(old);
    // ...but replaced by the second one.
    expect((await call(h, 'GET', '/api/me', { cookie: old })).statusCode).toBe(401);
    const list = (await call(h, 'GET', '/api/me/sessions', { cookie: fresh ?? '' })).json<{ sessions: { id: string; current: boolean }[] }>().sessions;
    const current = list.find((s) => s.current);
    expect(current?.id).toBeDefined();
    expect(current?.id).not.toBe(oldId);
    const [row] = await h.t.owner.query<{ mfa_verified: boolean; stepped_up_at: Date | null }>('select mfa_verified, stepped_up_at from sessions where id = $1', [current?.id]);
    expect(row?.mfa_verified).toBe(true);
    expect(row?.stepped_up_at).not.toBeNull();
  });

  it('wrong codes on a pending sign-in never yield a session, and the right one still does afterwards', async () => {
    const u = await passwordUser(h);
    const { secret } = await enrollTotp(h, u);
    const token = await pendingToken(h, u);
    for (let i = 0; i < 3; i++) {
      const res = await verifyMfa(h, token, { code: wrongCode(h, secret) });
      expect(res.statusCode).toBe(401);
      expect(code(res)).toBe('invalid_credentials');
      expect(sessionFrom(res)).toBeNull();
    }
    expect((await verifyMfa(h, token, { code: nextCode(h, secret) })).statusCode).toBe(200);
  });
});
