/**
 * TOTP as an attacker sees it: an enrollment that is not yet confirmed must not count, the
 * secret must not sit in the database in clear, a code works once (also when two requests race
 * with it), and only codes of the current step ±1 are accepted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { totpCodeAt } from '../../src/domains/identity/index.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';
import { call, code, sessionFrom } from '../support/client.js';
import { enrollTotp, login, nextCode, pendingToken, stepUp, verifyMfa, wrongCode } from '../support/mfa.js';
import { passwordUser } from '../support/users.js';

describe.each(ENGINES)('TOTP on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  // In full: enrollment returns an otpauth URI and a PNG data-URL QR code, and counts for nothing
  // until confirmed
  it('enrollment returns an otpauth URI and a QR code, and counts for nothing until confirmed', async () => {
    const u = await passwordUser(h);
    const cookie = await h.cookieFor(u.email);
    const res = await call(h, 'POST', '/api/me/mfa/totp', { cookie });
    expect(res.statusCode).toBe(201);
    const e = res.json<{ secret: string; otpauthUri: string; qrCode: string }>();
    expect(e.secret).toMatch(/^[A-Z2-7]{32}$/); // 160 bits, base32
    const uri = new URL(e.otpauthUri);
    expect(uri.protocol).toBe('otpauth:');
    expect(uri.host).toBe('totp');
    expect(decodeURIComponent(uri.pathname)).toBe(`/Palisade:${u.email}`);
    expect(Object.fromEntries(uri.searchParams)).toMatchObject({ secret: e.secret, issuer: 'Palisade', algorithm: 'SHA1', digits: '6', period: '30' });
    expect(e.qrCode).toMatch(/^data:image\/png;base64,/);
    const png = Buffer.from(e.qrCode.slice('data:image/png;base64,'.length), 'base64');
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));

    // Not confirmed: MFA is off, sign-in stays one step, and codes of the pending secret prove nothing.
    const status = await call(h, 'GET', '/api/me/mfa', { cookie });
    expect(status.json()).toEqual({ enabled: false, totp: false, passkeys: 0, recoveryCodesLeft: 0 });
    const direct = await login(h, u.email, u.password);
    expect(direct.statusCode).toBe(200);
    expect(direct.json()).not.toHaveProperty('mfaRequired');
    expect(sessionFrom(direct)).not.toBeNull();
    const pendingCode = totpCodeAt(e.secret, h.clock.now());
    expect(code(await stepUp(h, cookie, { code: pendingCode }))).toBe('validation_failed'); // no factor yet: password only
    expect((await call(h, 'POST', '/api/me/mfa/disable', { cookie, payload: { code: pendingCode } })).statusCode).toBe(401);
    expect((await call(h, 'POST', '/api/me/mfa/recovery-codes', { cookie })).statusCode).toBe(409);
  });

  it('refuses to confirm with a wrong or out-of-window code, and then confirms with a right one', async () => {
    const u = await passwordUser(h);
    const cookie = await h.cookieFor(u.email);
    const { secret } = (await call(h, 'POST', '/api/me/mfa/totp', { cookie })).json<{ secret: string }>();
    const now = h.clock.now().getTime();
    for (const bad of [wrongCode(h, secret), totpCodeAt(secret, new Date(now - 60_000)), totpCodeAt(secret, new Date(now + 60_000))]) {
      const res = await call(h, 'POST', '/api/me/mfa/totp/confirm', { cookie, payload: { code: bad } });
      expect(res.statusCode, bad).toBe(401);
    }
    expect((await call(h, 'GET', '/api/me/mfa', { cookie })).json()).toMatchObject({ enabled: false });
    const ok = await call(h, 'POST', '/api/me/mfa/totp/confirm', { cookie, payload: { code: totpCodeAt(secret, h.clock.now()) } });
    expect(ok.statusCode).toBe(200);
    expect((await call(h, 'GET', '/api/me/mfa', { cookie })).json()).toEqual({ enabled: true, totp: true, passkeys: 0, recoveryCodesLeft: 10 });
    // Now the password alone no longer signs in.
    const pending = await login(h, u.email, u.password);
    expect(pending.json()).toMatchObject({ mfaRequired: true });
    expect(sessionFrom(pending)).toBeNull();
  });

  it('stores the secret sealed: the row holds neither the base32 nor the raw key bytes', async () => {
    const u = await passwordUser(h);
    const { secret } = await enrollTotp(h, u);
    const [row] = await h.t.owner.query<{ secret_sealed: string }>('select secret_sealed from totp_credentials where user_id = $1', [u.id]);
    expect(row).toBeDefined();
    const stored = row?.secret_sealed ?? '';
    const raw = base32Decode(secret);
    for (const form of [secret, secret.toLowerCase(), raw.toString('hex'), raw.toString('base64'), raw.toString('base64url')]) {
      expect(stored).not.toContain(form);
    }
    expect(stored.length).toBeGreaterThan(secret.length);
    // Sealed per user (AAD): the blob of one user, copied onto another, does not open.
    const other = await passwordUser(h);
    await enrollTotp(h, other);
    await h.t.owner.query('update totp_credentials set secret_sealed = $1 where user_id = $2', [stored, other.id]);
    const otherCookie = await h.cookieFor(other.email);
    const res = await stepUp(h, otherCookie, { code: nextCode(h, secret) });
    expect(res.statusCode).toBeGreaterThanOrEqual(400);
    expect(res.statusCode).not.toBe(200);
  });

  it('accepts a code once: the same code is refused at step-up and at sign-in, and an older one too', async () => {
    const u = await passwordUser(h);
    const { secret, cookie } = await enrollTotp(h, u);
    // The code that confirmed the enrollment is spent.
    const confirmCode = totpCodeAt(secret, h.clock.now());
    expect((await stepUp(h, cookie, { code: confirmCode })).statusCode).toBe(401);

    const c1 = nextCode(h, secret);
    expect((await stepUp(h, cookie, { code: c1 })).statusCode).toBe(200);
    expect((await stepUp(h, cookie, { code: c1 })).statusCode).toBe(401);
    // Replayed on the sign-in path, within the same 30 s window.
    const token = await pendingToken(h, u);
    const replay = await verifyMfa(h, token, { code: c1 });
    expect(replay.statusCode).toBe(401);
    expect(sessionFrom(replay)).toBeNull();
    // A code of the previous step (still inside ±1) is older than the accepted one: refused.
    h.clock.advance(30_000);
    const previous = totpCodeAt(secret, new Date(h.clock.now().getTime() - 30_000));
    expect(previous).toBe(c1);
    expect((await verifyMfa(h, token, { code: previous })).statusCode).toBe(401);
    // The current one still works on the same pending sign-in.
    const ok = await verifyMfa(h, token, { code: totpCodeAt(secret, h.clock.now()) });
    expect(ok.statusCode).toBe(200);
    expect(sessionFrom(ok)).not.toBeNull();
  });

  it('two parallel requests with one code: exactly one succeeds', async () => {
    const u = await passwordUser(h);
    const { secret } = await enrollTotp(h, u);
    const [a, b] = [await h.cookieFor(u.email), await h.cookieFor(u.email)];
    for (let round = 0; round < 3; round++) {
      const c = nextCode(h, secret);
      const results = await Promise.all([stepUp(h, a, { code: c }), stepUp(h, b, { code: c }), stepUp(h, a, { code: c })]);
      expect(results.map((r) => r.statusCode).sort()).toEqual([200, 401, 401]);
    }
  });

  it('accepts the current step ±1 and refuses ±2 (and malformed codes without a 5xx)', async () => {
    const u = await passwordUser(h);
    const { secret, cookie } = await enrollTotp(h, u);
    h.clock.advance(5 * 60_000);
    const at = (deltaSteps: number) => totpCodeAt(secret, new Date(h.clock.now().getTime() + deltaSteps * 30_000));
    expect((await stepUp(h, cookie, { code: at(-2) })).statusCode).toBe(401);
    expect((await stepUp(h, cookie, { code: at(2) })).statusCode).toBe(401);
    expect((await stepUp(h, cookie, { code: at(-1) })).statusCode).toBe(200);
    expect((await stepUp(h, cookie, { code: at(1) })).statusCode).toBe(200); // newer than -1: fine
    h.clock.advance(5 * 60_000);
    expect((await stepUp(h, cookie, { code: at(0) })).statusCode).toBe(200);
    for (const bad of ['12345', '1234567', 'abcdef', '12 456', '１２３４５６', '']) {
      const res = await stepUp(h, cookie, { code: bad });
      expect(res.statusCode, JSON.stringify(bad)).toBe(400);
    }
  });

  // In full: a replaced pending secret no longer confirms; two racing confirmations with one code
  // enable MFA once
  it('a replaced pending secret no longer confirms; racing confirmations enable MFA once', async () => {
    const u = await passwordUser(h);
    const [a, b] = [await h.cookieFor(u.email), await h.cookieFor(u.email)];
    const first = (await call(h, 'POST', '/api/me/mfa/totp', { cookie: a })).json<{ secret: string }>().secret;
    const second = (await call(h, 'POST', '/api/me/mfa/totp', { cookie: b })).json<{ secret: string }>().secret;
    expect(second).not.toBe(first);
    const stale = await call(h, 'POST', '/api/me/mfa/totp/confirm', { cookie: a, payload: { code: totpCodeAt(first, h.clock.now()) } });
    expect(stale.statusCode).toBe(401);
    const c = totpCodeAt(second, h.clock.now());
    const raced = await Promise.all([a, b].map((cookie) => call(h, 'POST', '/api/me/mfa/totp/confirm', { cookie, payload: { code: c } })));
    // The loser is refused either as a conflict or, if the winner committed first, because a
    // password proof no longer counts once MFA is on (step_up_required).
    expect(raced.filter((r) => r.statusCode === 200)).toHaveLength(1);
    expect([403, 409]).toContain(raced.find((r) => r.statusCode !== 200)?.statusCode);
    const [codes] = await h.t.owner.query<{ n: number }>('select count(*)::int as n from recovery_codes where user_id = $1', [u.id]);
    expect(codes?.n).toBe(10);
    expect(raced.find((r) => r.statusCode !== 200)?.body).not.toContain('recoveryCodes');
  });

  // In full: cannot replace a confirmed authenticator by enrolling again (a stolen session cannot
  // swap the secret)
  it('cannot replace a confirmed authenticator by enrolling again', async () => {
    const u = await passwordUser(h);
    const { secret, cookie } = await enrollTotp(h, u);
    const again = await call(h, 'POST', '/api/me/mfa/totp', { cookie });
    expect(again.statusCode).toBe(409);
    // The original secret still works.
    expect((await stepUp(h, cookie, { code: nextCode(h, secret) })).statusCode).toBe(200);
  });
});

function base32Decode(s: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of s) {
    value = (value << 5) | alphabet.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}
