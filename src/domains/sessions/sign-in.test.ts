import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type Problem, type TestApp } from '../../../test/support/app.js';
import { SoftAuthenticator } from '../../../test/support/authenticator.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId, sha256Hex } from '../../crypto/index.js';
import { STEP_UP_SECONDS, systemContext, type RequestContext } from '../../kernel/context.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { hashPassword, totpCodeAt } from '../identity/index.js';
import type { SignInMethod } from './sign-in.js';
import { auditSelect } from '../../../test/support/evidence.js';

const PASSWORD = 'sign-in service passphrase 2026';
const STEP_UP_MS = STEP_UP_SECONDS * 1000;

interface SessionState {
  id: string;
  mfaVerified: boolean;
  steppedUpAt: number | null;
  revokedReason: string | null;
}

/** Every sign-in path ends in the sign-in service: what each records on the session and in the trail. */
describe.each(ENGINES)('sign-in service on %s', (engine) => {
  let h: TestApp;
  let hashed: string;
  let serial = 0;
  beforeAll(async () => {
    h = await createTestApp(engine);
    hashed = await hashPassword(PASSWORD);
  });
  afterAll(async () => h?.close());

  const cookieName = () => h.built.cookie.name;
  const signIn = () => h.built.services.signIn;

  async function freshUser(): Promise<{ id: string; email: string }> {
    const id = newId();
    const email = `sign-in-${(serial++).toString(36)}-${id.slice(0, 8)}@example.test`;
    await h.insertUser({ id, email, name: 'Sign-in user', passwordHash: hashed, verified: true });
    return { id, email };
  }

  const post = (url: string, payload: object, cookie?: string) =>
    h.built.app.inject({ method: 'POST', url, headers: { origin: ORIGIN, ...(cookie ? { cookie } : {}) }, payload });
  const cookieOf = (res: LightMyRequestResponse): string => {
    const set = res.cookies.find((c) => c.name === cookieName());
    if (!set) throw new Error(`no session cookie: ${res.statusCode} ${res.body}`);
    return `${cookieName()}=${set.value}`;
  };
  const problem = (res: LightMyRequestResponse) => res.json<Problem>().code;

  async function session(cookie: string): Promise<SessionState> {
    const secret = cookie.slice(cookieName().length + 1, cookieName().length + 44);
    return sessionWhere('token_hash = $1', sha256Hex(secret));
  }
  async function sessionById(id: string): Promise<SessionState> {
    return sessionWhere('id = $1', id);
  }
  async function sessionWhere(where: string, value: string): Promise<SessionState> {
    const [r] = await h.t.owner.query<{ id: string; mfa_verified: boolean; stepped_up_at: Date | string | null; revoked_reason: string | null }>(
      `select id, mfa_verified, stepped_up_at, revoked_reason from sessions where ${where}`, [value],
    );
    if (!r) throw new Error('no such session');
    return { id: r.id, mfaVerified: r.mfa_verified, steppedUpAt: r.stepped_up_at ? new Date(r.stepped_up_at).getTime() : null, revokedReason: r.revoked_reason };
  }
  async function loginEvents(sessionId: string): Promise<Record<string, unknown>[]> {
    const list = await auditSelect<{ details: Record<string, unknown> | string | null }>(h, ['details'], `where org_id = $1 and action = 'auth.login' and target_id = $2`, [SYSTEM_ORG_ID, sessionId],
    );
    return list.map((r) => (typeof r.details === 'string' ? (JSON.parse(r.details) as Record<string, unknown>) : (r.details ?? {})));
  }
  const sessionCount = async (userId: string) =>
    (await h.t.owner.query<{ n: number }>('select count(*)::int as n from sessions where user_id = $1', [userId]))[0]?.n ?? 0;

  /** A request context signed in as `userId` on `sessionId` (what the pipeline builds). */
  const signedInCtx = (user: { id: string; email: string }, sessionId: string): RequestContext => ({
    ...systemContext('sign-in test'),
    actor: { type: 'user', userId: user.id, session: { id: sessionId, createdAt: h.clock.now(), lastSeenAt: h.clock.now() } },
  });
  const issue = (userId: string, proof: { mfaVerified: boolean; steppedUpAt: Date | null }) =>
    h.t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => h.built.services.sessions.issue(tx, userId, systemContext('sign-in test'), { proof }));

  async function enrollTotp(user: { email: string }): Promise<{ secret: string; recoveryCodes: string[]; cookie: string }> {
    const cookie = await h.cookieFor(user.email);
    const start = await post('/api/me/mfa/totp', {}, cookie);
    expect(start.statusCode, start.body).toBe(201);
    const { secret } = start.json<{ secret: string }>();
    const confirm = await post('/api/me/mfa/totp/confirm', { code: totpCodeAt(secret, h.clock.now()) }, cookie);
    expect(confirm.statusCode, confirm.body).toBe(200);
    return { secret, recoveryCodes: confirm.json<{ recoveryCodes: string[] }>().recoveryCodes, cookie };
  }
  /** A TOTP code of a step after any accepted so far (an equal or older step is a replay). */
  const nextCode = (secret: string) => {
    h.clock.advance(30_000);
    return totpCodeAt(secret, h.clock.now());
  };
  async function pendingToken(email: string): Promise<string> {
    const res = await post('/api/auth/login', { email, password: PASSWORD });
    expect(res.json<{ mfaRequired?: boolean }>().mfaRequired, res.body).toBe(true);
    return res.json<{ mfaToken: string }>().mfaToken;
  }
  async function addPasskey(cookie: string): Promise<SoftAuthenticator> {
    const auth = new SoftAuthenticator(new URL(ORIGIN).hostname, ORIGIN);
    const opts = (await post('/api/me/passkeys/registration-options', {}, cookie)).json<{ ceremonyToken: string; options: Parameters<SoftAuthenticator['create']>[0] }>();
    const added = await post('/api/me/passkeys', { ceremonyToken: opts.ceremonyToken, name: 'Laptop', response: auth.create(opts.options) }, cookie);
    expect(added.statusCode, added.body).toBe(201);
    return auth;
  }

  /** What a sign-in by `method` must leave: the proof on the session and the method in the trail. */
  async function expectSignedInBy(cookie: string, method: SignInMethod): Promise<void> {
    const s = await session(cookie);
    const secondFactor = method !== 'password';
    expect(s).toMatchObject({ mfaVerified: secondFactor, steppedUpAt: h.clock.now().getTime(), revokedReason: null });
    expect(await loginEvents(s.id)).toEqual([secondFactor ? { secondFactor: method } : {}]);
  }

  it('a password sign-in is a fresh proof without a second factor, and revokes the cookie it brought', async () => {
    const user = await freshUser();
    const brought = await h.cookieFor(user.email);
    const res = await post('/api/auth/login', { email: user.email, password: PASSWORD }, brought);
    expect(res.statusCode, res.body).toBe(200);
    await expectSignedInBy(cookieOf(res), 'password');
    expect((await session(brought)).revokedReason).toBe('replaced_by_login');
  });

  it('a TOTP second step marks the session proven with a second factor', async () => {
    const user = await freshUser();
    const { secret } = await enrollTotp(user);
    const res = await post('/api/auth/mfa/verify', { mfaToken: await pendingToken(user.email), code: nextCode(secret) });
    expect(res.statusCode, res.body).toBe(200);
    await expectSignedInBy(cookieOf(res), 'totp');
  });

  it('a recovery code second step is recorded as a recovery code', async () => {
    const user = await freshUser();
    const { recoveryCodes } = await enrollTotp(user);
    const res = await post('/api/auth/mfa/verify', { mfaToken: await pendingToken(user.email), recoveryCode: recoveryCodes[0] });
    expect(res.statusCode, res.body).toBe(200);
    await expectSignedInBy(cookieOf(res), 'recovery_code');
  });

  it('a passkey sign-in and a passkey second step are both recorded as a passkey', async () => {
    const user = await freshUser();
    const auth = await addPasskey(await h.cookieFor(user.email));
    const alone = (await post('/api/auth/passkey/options', {})).json<{ ceremonyToken: string; options: { challenge: string } }>();
    const signedIn = await post('/api/auth/passkey/login', { ceremonyToken: alone.ceremonyToken, response: auth.get(alone.options) });
    expect(signedIn.statusCode, signedIn.body).toBe(200);
    await expectSignedInBy(cookieOf(signedIn), 'passkey');

    const mfaToken = await pendingToken(user.email);
    const second = (await post('/api/auth/passkey/options', { mfaToken })).json<{ ceremonyToken: string; options: { challenge: string } }>();
    const res = await post('/api/auth/mfa/passkey', { mfaToken, ceremonyToken: second.ceremonyToken, response: auth.get(second.options) });
    expect(res.statusCode, res.body).toBe(200);
    await expectSignedInBy(cookieOf(res), 'passkey');
  });

  it('an SSO sign-in proves neither a second factor nor a fresh identity until SSO says what it proves', async () => {
    const user = await freshUser();
    const s = await signIn().finish(systemContext('sign-in test'), { userId: user.id, method: 'sso' });
    expect(await sessionById(s.sessionId)).toMatchObject({ mfaVerified: false, steppedUpAt: null });
    expect(await loginEvents(s.sessionId)).toEqual([{}]);
  });

  it('a sign-in refuses a credential checked under an epoch a reset or revocation has since moved', async () => {
    const user = await freshUser();
    const [{ session_epoch: epoch } = { session_epoch: -1 }] = await h.t.owner.query<{ session_epoch: number }>('select session_epoch from users where id = $1', [user.id]);
    await h.t.owner.query('update users set session_epoch = session_epoch + 1 where id = $1', [user.id]);
    await expect(signIn().finish(systemContext('sign-in test'), { userId: user.id, method: 'password', epoch })).rejects.toMatchObject({ code: 'invalid_credentials' });
    expect(await sessionCount(user.id)).toBe(0);
    const s = await signIn().finish(systemContext('sign-in test'), { userId: user.id, method: 'password', epoch: epoch + 1 });
    expect((await sessionById(s.sessionId)).revokedReason).toBeNull();
  });

  it('a sign-in whose token is already spent issues nothing and leaves the brought session alone', async () => {
    const user = await freshUser();
    const brought = await h.cookieFor(user.email);
    const before = await sessionCount(user.id);
    await expect(signIn().finish(systemContext('sign-in test'), { userId: user.id, method: 'totp', brought: brought.split('=')[1], consume: async () => false }))
      .rejects.toMatchObject({ code: 'token_invalid' });
    expect(await sessionCount(user.id)).toBe(before);
    expect((await session(brought)).revokedReason).toBeNull();
  });

  it('a replayed MFA token is refused, even with another valid code', async () => {
    const user = await freshUser();
    const { recoveryCodes } = await enrollTotp(user);
    const mfaToken = await pendingToken(user.email);
    expect((await post('/api/auth/mfa/verify', { mfaToken, recoveryCode: recoveryCodes[0] })).statusCode).toBe(200);
    const replay = await post('/api/auth/mfa/verify', { mfaToken, recoveryCode: recoveryCodes[1] });
    expect(problem(replay)).toBe('token_invalid');
    expect(replay.cookies.find((c) => c.name === cookieName())).toBeUndefined();
  });

  it('two second steps racing with one MFA token get one session', async () => {
    const user = await freshUser();
    const { recoveryCodes } = await enrollTotp(user);
    const mfaToken = await pendingToken(user.email);
    const before = await sessionCount(user.id);
    const both = await Promise.all([0, 1].map((i) => post('/api/auth/mfa/verify', { mfaToken, recoveryCode: recoveryCodes[i] })));
    expect(both.map((r) => r.statusCode).sort()).toEqual([200, 400]);
    expect(both.map((r) => (r.statusCode === 400 ? problem(r) : 'ok')).sort()).toEqual(['ok', 'token_invalid']);
    expect(await sessionCount(user.id)).toBe(before + 1);
  });

  it('a step-up counts for exactly STEP_UP_SECONDS, and stepping up again renews it', async () => {
    const user = await freshUser();
    const cookie = cookieOf(await post('/api/auth/login', { email: user.email, password: PASSWORD }));
    const sensitive = () => post('/api/me/mfa/totp', {}, cookie);
    h.clock.advance(STEP_UP_MS);
    expect((await sensitive()).statusCode).toBe(201);
    h.clock.advance(1);
    const expired = await sensitive();
    expect(expired.statusCode).toBe(403);
    expect(problem(expired)).toBe('step_up_required');
    const up = await post('/api/auth/step-up', { password: PASSWORD }, cookie);
    expect(up.statusCode, up.body).toBe(200);
    expect(up.json<{ steppedUpUntil: string }>().steppedUpUntil).toBe(new Date(h.clock.now().getTime() + STEP_UP_MS).toISOString());
    expect((await session(cookie)).steppedUpAt).toBe(h.clock.now().getTime());
    expect((await sensitive()).statusCode).toBe(201);
  });

  it('stepping up with a factor also marks the session proven with it, and is audited by method', async () => {
    const user = await freshUser();
    const { secret } = await enrollTotp(user);
    const s = await issue(user.id, { mfaVerified: false, steppedUpAt: null });
    const ctx = signedInCtx(user, s.id);
    h.clock.advance(30_000);
    await h.built.services.mfa.verifyFactor(ctx, user.id, { code: totpCodeAt(secret, h.clock.now()) }, 'step_up');
    const { steppedUpUntil } = await signIn().stepUp(ctx, 'totp');
    expect(steppedUpUntil).toBe(new Date(h.clock.now().getTime() + STEP_UP_MS).toISOString());
    expect(await sessionById(s.id)).toMatchObject({ mfaVerified: true, steppedUpAt: h.clock.now().getTime() });
    const [event] = await auditSelect<{ details: unknown }>(h, ['details'], `where org_id = $1 and action = 'auth.step_up' and target_id = $2`, [SYSTEM_ORG_ID, s.id],
    );
    expect(typeof event?.details === 'string' ? JSON.parse(event.details) : event?.details).toEqual({ method: 'totp' });
  });

  it('a password step-up of an account that has a second factor changes nothing', async () => {
    const user = await freshUser();
    await enrollTotp(user);
    const s = await issue(user.id, { mfaVerified: false, steppedUpAt: null });
    await signIn().stepUp(signedInCtx(user, s.id), 'password');
    expect(await sessionById(s.id)).toMatchObject({ mfaVerified: false, steppedUpAt: null });
  });

  it('adding a factor voids the password step-ups of other sessions and proves the adding one', async () => {
    const user = await freshUser();
    const stepped = h.clock.now();
    const adding = await issue(user.id, { mfaVerified: false, steppedUpAt: stepped });
    const passwordOnly = await issue(user.id, { mfaVerified: false, steppedUpAt: stepped });
    const factorProven = await issue(user.id, { mfaVerified: true, steppedUpAt: stepped });
    const bystander = await freshUser();
    const elsewhere = await issue(bystander.id, { mfaVerified: false, steppedUpAt: stepped });
    h.clock.advance(5_000);
    await h.t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => signIn().factorAdded(tx, signedInCtx(user, adding.id), user.id));
    expect(await sessionById(adding.id)).toMatchObject({ mfaVerified: true, steppedUpAt: h.clock.now().getTime() });
    expect(await sessionById(passwordOnly.id)).toMatchObject({ mfaVerified: false, steppedUpAt: null });
    expect(await sessionById(factorProven.id)).toMatchObject({ mfaVerified: true, steppedUpAt: stepped.getTime() });
    expect(await sessionById(elsewhere.id)).toMatchObject({ steppedUpAt: stepped.getTime() });
  });

  it('a factor added without a signed-in session (an operator tool) proves no session', async () => {
    const user = await freshUser();
    const s = await issue(user.id, { mfaVerified: false, steppedUpAt: null });
    await h.t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => signIn().factorAdded(tx, systemContext('sign-in test'), user.id));
    expect(await sessionById(s.id)).toMatchObject({ mfaVerified: false, steppedUpAt: null });
  });

  it('removing the last factor leaves no session of the account proven with one', async () => {
    const user = await freshUser();
    const cookie = await h.cookieFor(user.email);
    const auth = await addPasskey(cookie);
    const other = (await post('/api/auth/passkey/options', {})).json<{ ceremonyToken: string; options: { challenge: string } }>();
    const otherCookie = cookieOf(await post('/api/auth/passkey/login', { ceremonyToken: other.ceremonyToken, response: auth.get(other.options) }));
    const bystander = await freshUser();
    const elsewhere = await issue(bystander.id, { mfaVerified: true, steppedUpAt: null });
    expect((await session(cookie)).mfaVerified).toBe(true);
    expect((await session(otherCookie)).mfaVerified).toBe(true);
    const [passkey] = (await h.built.app.inject({ method: 'GET', url: '/api/me/passkeys', headers: { cookie } })).json<{ passkeys: { id: string }[] }>().passkeys;
    const removed = await h.built.app.inject({ method: 'DELETE', url: `/api/me/passkeys/${passkey?.id}`, headers: { cookie, origin: ORIGIN } });
    expect(removed.statusCode, removed.body).toBe(204);
    expect((await session(cookie)).mfaVerified).toBe(false);
    expect((await session(otherCookie)).mfaVerified).toBe(false);
    expect((await sessionById(elsewhere.id)).mfaVerified).toBe(true);
  });

  it('an expired step-up is not renewed by signing in again on another session', async () => {
    const user = await freshUser();
    const old = cookieOf(await post('/api/auth/login', { email: user.email, password: PASSWORD }));
    h.clock.advance(STEP_UP_MS + 1);
    const fresh = cookieOf(await post('/api/auth/login', { email: user.email, password: PASSWORD }));
    expect(problem(await post('/api/me/mfa/totp', {}, old))).toBe('step_up_required');
    expect((await post('/api/me/mfa/totp', {}, fresh)).statusCode).toBe(201);
  });

  // review 2026-12-05 F2: the login read mfa_enabled before its password check; a factor the owner
  // confirmed in between gave the password holder a stepped-up session, and so recovery codes.
  it('refuses a password sign-in when a factor was confirmed during its password check', async () => {
    const u = await freshUser();
    const owner = cookieOf(await post('/api/auth/login', { email: u.email, password: PASSWORD }));
    const { secret } = (await post('/api/me/mfa/totp', {}, owner)).json<{ secret: string }>();
    const identity = h.built.services.identity;
    const original = identity.verifyCredentials;
    identity.verifyCredentials = async (...args) => {
      const checked = await original(...args);
      const confirm = await post('/api/me/mfa/totp/confirm', { code: totpCodeAt(secret, h.clock.now()) }, owner);
      expect(confirm.statusCode, confirm.body).toBe(200);
      return checked;
    };
    let raced: LightMyRequestResponse;
    try {
      raced = await post('/api/auth/login', { email: u.email, password: PASSWORD });
    } finally {
      identity.verifyCredentials = original;
    }
    expect(raced.statusCode).toBe(401);
    expect(problem(raced)).toBe('invalid_credentials');
    expect(raced.cookies.find((c) => c.name === cookieName())).toBeUndefined();
    // Signing in again now asks for the second factor.
    expect((await post('/api/auth/login', { email: u.email, password: PASSWORD })).json()).toHaveProperty('mfaRequired', true);
  });

  it('refuses every first-factor-only sign-in of an account that has a second factor by now', async () => {
    const u = await freshUser();
    const owner = cookieOf(await post('/api/auth/login', { email: u.email, password: PASSWORD }));
    const { secret } = (await post('/api/me/mfa/totp', {}, owner)).json<{ secret: string }>();
    expect((await post('/api/me/mfa/totp/confirm', { code: totpCodeAt(secret, h.clock.now()) }, owner)).statusCode).toBe(200);
    // The route read "no factor" before the confirmation (a mailed link, a social or SSO sign-in racing it).
    for (const method of ['magic_link', 'social', 'sso'] as const) {
      await expect(signIn().finish(systemContext('sign-in test'), { userId: u.id, method }), method).rejects.toMatchObject({ code: 'invalid_credentials' });
    }
    // The IdP's MFA, trusted by the connection, is a second factor: that one is issued.
    const trusted = await signIn().finish(systemContext('sign-in test'), { userId: u.id, method: 'sso', sso: { orgId: h.orgId('acme'), connectionId: newId(), idpMfa: true } });
    expect(trusted.sessionId).toBeTruthy();
  });
});
