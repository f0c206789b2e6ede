/**
 * Step-up ("sudo mode"): every route that declares it refuses a session whose last proof is
 * older than ten minutes, until POST /api/auth/step-up; an account with a second factor cannot
 * step up with its password; failed step-ups count toward the lockout.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';
import { freshOrg, passwordUser, WRONG } from '../support/users.js';
import { audit, lockState } from '../support/evidence.js';
import { call, code } from '../support/client.js';
import { enrollTotp, login, nextCode, signInWithMfa, stepUp, wrongCode } from '../support/mfa.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';

const TEN_MINUTES = 10 * 60_000;

describe.each(ENGINES)('step-up on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  it('declares step-up on the sensitive routes', () => {
    const declared = h.built.routes.filter((r) => r.stepUp).map((r) => `${r.method} ${r.url}`).sort();
    expect(declared).toEqual(
      expect.arrayContaining([
        'PATCH /api/orgs/:orgId/settings',
        'PATCH /api/orgs/:orgId/members/:userId',
        'POST /api/me/mfa/totp',
        'POST /api/me/mfa/recovery-codes',
        'POST /api/orgs/:orgId/roles',
      ]),
    );
  });

  it('every step-up route answers 403 step_up_required once the proof is older than ten minutes', async () => {
    const { orgId, cookie } = await freshOrg(h);
    const member = await passwordUser(h, orgId, 'member');
    h.clock.advance(TEN_MINUTES + 1000);
    const routes = h.built.routes.filter((r) => r.stepUp);
    expect(routes.length).toBeGreaterThanOrEqual(8);
    for (const r of routes) {
      const url = r.url.replace(':orgId', orgId).replace(':userId', member.id).replace(/:[A-Za-z]+/g, () => newId());
      const res = await call(h, r.method, url, { cookie, payload: r.example?.() ?? {} });
      expect(res.statusCode, `${r.method} ${r.url}: ${res.body}`).toBe(403);
      expect(code(res), `${r.method} ${r.url}`).toBe('step_up_required');
    }
    // Nothing changed: the settings write did not happen.
    const settings = await call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie });
    expect(settings.json()).toMatchObject({ sessionIdleMinutes: null });
  });

  it('ten minutes exactly still counts; a step-up with the password re-opens the routes for ten minutes', async () => {
    const { orgId, owner, cookie } = await freshOrg(h);
    const patch = (body: object) => call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie, payload: body });
    h.clock.advance(TEN_MINUTES);
    expect((await patch({ sessionIdleMinutes: 20 })).statusCode).toBe(200);
    h.clock.advance(1000);
    expect(code(await patch({ sessionIdleMinutes: 25 }))).toBe('step_up_required');

    const up = await stepUp(h, cookie, { password: owner.password });
    expect(up.statusCode).toBe(200);
    expect(new Date(up.json<{ steppedUpUntil: string }>().steppedUpUntil).getTime()).toBe(h.clock.now().getTime() + TEN_MINUTES);
    expect((await patch({ sessionIdleMinutes: 25 })).statusCode).toBe(200);
    expect(await audit(h, SYSTEM_ORG_ID, 'auth.step_up', undefined)).not.toHaveLength(0);
    h.clock.advance(TEN_MINUTES + 1000);
    expect(code(await patch({ sessionIdleMinutes: 26 }))).toBe('step_up_required');
  });

  it('a step-up freshens only the session it was made on', async () => {
    const { orgId, owner, cookie } = await freshOrg(h);
    const other = await h.cookieFor(owner.email);
    h.clock.advance(TEN_MINUTES + 1000);
    expect((await stepUp(h, cookie, { password: owner.password })).statusCode).toBe(200);
    expect((await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie, payload: { sessionIdleMinutes: 30 } })).statusCode).toBe(200);
    expect(code(await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie: other, payload: { sessionIdleMinutes: 31 } }))).toBe('step_up_required');
  });

  it('an account with a second factor cannot step up with its password, only with a factor', async () => {
    const u = await passwordUser(h);
    const { secret } = await enrollTotp(h, u);
    const cookie = await signInWithMfa(h, u, secret);
    h.clock.advance(TEN_MINUTES + 1000);
    const regen = () => call(h, 'POST', '/api/me/mfa/recovery-codes', { cookie });
    expect(code(await regen())).toBe('step_up_required');
    for (const body of [{ password: u.password }, { password: u.password, code: nextCode(h, secret) }] as Record<string, string>[]) {
      const res = await stepUp(h, cookie, body);
      expect(res.statusCode, JSON.stringify(Object.keys(body))).toBe(400);
    }
    expect(code(await regen())).toBe('step_up_required');
    expect((await stepUp(h, cookie, { code: nextCode(h, secret) })).statusCode).toBe(200);
    expect((await regen()).statusCode).toBe(200);
  });

  // In full: a password proof made before MFA was turned on stops counting once it is on (no
  // recovery codes for a password-only session)
  it('a password proof made before MFA was turned on stops counting once it is on', async () => {
    const u = await passwordUser(h);
    // A session proven with the password only (say, stolen), still inside its ten minutes...
    const passwordOnly = await h.cookieFor(u.email);
    expect((await stepUp(h, passwordOnly, { password: u.password })).statusCode).toBe(200);
    // ...then the owner turns MFA on from another session.
    const { secret, cookie: enrolling } = await enrollTotp(h, u);
    const grab = await call(h, 'POST', '/api/me/mfa/recovery-codes', { cookie: passwordOnly });
    expect(grab.statusCode).toBe(403);
    expect(code(grab)).toBe('step_up_required');
    expect(grab.body).not.toContain('recoveryCodes');
    // The enrolling session proved the factor: it may.
    expect((await call(h, 'POST', '/api/me/mfa/recovery-codes', { cookie: enrolling })).statusCode).toBe(200);
    // The password-only session gets back in with a factor, not with the password.
    expect((await stepUp(h, passwordOnly, { password: u.password })).statusCode).toBe(400);
    expect((await stepUp(h, passwordOnly, { code: nextCode(h, secret) })).statusCode).toBe(200);
    expect((await call(h, 'POST', '/api/me/mfa/recovery-codes', { cookie: passwordOnly })).statusCode).toBe(200);
  });

  it('an account without a factor cannot step up with a made-up code', async () => {
    const u = await passwordUser(h);
    const cookie = await h.cookieFor(u.email);
    expect((await stepUp(h, cookie, { code: '123456' })).statusCode).toBe(400);
    expect((await stepUp(h, cookie, { recoveryCode: 'aaaa-bbbb-cccc' })).statusCode).toBe(400);
    expect((await stepUp(h, cookie, {})).statusCode).toBe(400);
  });

  // In full: failed password step-ups count toward the lockout: the fifth locks the account, the
  // right password is then refused
  it('failed password step-ups count toward the lockout', async () => {
    const u = await passwordUser(h);
    const cookie = await h.cookieFor(u.email);
    for (let i = 0; i < 5; i++) expect((await stepUp(h, cookie, { password: WRONG })).statusCode).toBe(401);
    expect((await lockState(h, u.id)).locked_until).not.toBeNull();
    expect((await stepUp(h, cookie, { password: u.password })).statusCode).toBe(401);
    expect((await login(h, u.email, u.password)).statusCode).toBe(401);
    expect(await audit(h, SYSTEM_ORG_ID, 'auth.account_locked', u.id)).toHaveLength(1);
    const failed = await audit(h, SYSTEM_ORG_ID, 'auth.step_up_failed', u.id);
    expect(failed.map((e) => e.details.reason)).toEqual(['bad_password', 'bad_password', 'bad_password', 'bad_password', 'bad_password', 'locked']);
  });

  it('failed factor step-ups count toward the lockout too', async () => {
    const u = await passwordUser(h);
    const { secret } = await enrollTotp(h, u);
    const cookie = await signInWithMfa(h, u, secret);
    for (let i = 0; i < 4; i++) expect((await stepUp(h, cookie, { code: wrongCode(h, secret) })).statusCode).toBe(401);
    expect((await stepUp(h, cookie, { recoveryCode: 'zzzz-zzzz-zzzz' })).statusCode).toBe(401);
    // Locked: even the right code is refused, and so is the password step of a new sign-in.
    expect((await stepUp(h, cookie, { code: nextCode(h, secret) })).statusCode).toBe(401);
    expect((await login(h, u.email, u.password)).statusCode).toBe(401);
    expect(await audit(h, SYSTEM_ORG_ID, 'auth.account_locked', u.id)).toHaveLength(1);
  });
});
