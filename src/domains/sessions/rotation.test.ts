import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp, SESSION_COOKIE, type Problem } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { sha256Hex } from '../../crypto/index.js';

const SESSION = SESSION_COOKIE;
const MIN = 60_000;
const NEW_PASSWORD = 'a freshly changed passphrase 9';

type Res = Awaited<ReturnType<TestApp['built']['app']['inject']>>;

describe.each(ENGINES)('session rotation on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  const app = () => h.built.app;
  const me = (cookie: string) => app().inject({ method: 'GET', url: '/api/me', headers: { cookie } });
  const newCookie = (res: Res): string | null => {
    const c = res.cookies.find((x) => x.name === SESSION);
    return c ? `${SESSION}=${c.value}` : null;
  };
  const row = async (cookie: string) => {
    const secret = cookie.slice(SESSION.length + 1, SESSION.length + 44);
    const r = await h.t.owner.query<{ id: string; created_at: Date; absolute_expires_at: Date; revoked_reason: string | null }>(
      'select id, created_at, absolute_expires_at, revoked_reason from sessions where token_hash = $1', [sha256Hex(secret)],
    );
    if (!r[0]) throw new Error('no such session');
    return { ...r[0], created_at: new Date(r[0].created_at).getTime(), absolute_expires_at: new Date(r[0].absolute_expires_at).getTime() };
  };
  const userId = async (email: string): Promise<string> =>
    (await h.userId(email));
  const changeRole = (cookie: string, org: string, uid: string, role: string) =>
    app().inject({ method: 'PATCH', url: `/api/orgs/${h.orgId(org)}/members/${uid}`, headers: { cookie, origin: ORIGIN }, payload: { role } });
  const changePassword = (cookie: string, currentPassword: string, newPassword: string) =>
    app().inject({ method: 'POST', url: '/api/me/password', headers: { cookie, origin: ORIGIN }, payload: { currentPassword, newPassword } });
  const createProject = (cookie: string, org: string) =>
    app().inject({ method: 'POST', url: `/api/orgs/${h.orgId(org)}/projects`, headers: { cookie, origin: ORIGIN }, payload: { name: 'Rotation probe' } });

  it('rotates the member\u2019s session on their next request after a role change', async () => {
    const admin = await h.cookieFor('admin@acme.test');
    const old = await h.cookieFor('member@acme.test');
    const before = await row(old);
    h.clock.advance(5 * MIN);
    const changed = await changeRole(admin, 'acme', await userId('member@acme.test'), 'viewer');
    expect(changed.statusCode).toBe(204);
    // The admin's own session is not touched by changing someone else.
    expect(newCookie(await me(admin))).toBeNull();

    const next = await me(old);
    expect(next.statusCode).toBe(200);
    const fresh = newCookie(next);
    expect(fresh).not.toBeNull();
    expect(fresh).not.toBe(old);
    expect(next.cookies.find((c) => c.name === SESSION)).toMatchObject({ httpOnly: true, secure: true, sameSite: 'Lax', path: '/' });

    const oldAfter = await me(old);
    expect(oldAfter.statusCode).toBe(401);
    expect(oldAfter.json<Problem>().code).toBe('unauthenticated');
    const f = fresh as string;
    const again = await me(f);
    expect(again.statusCode).toBe(200);
    expect(newCookie(again)).toBeNull();

    // Same lifetime: the rotated id inherits the original start and absolute expiry.
    const after = await row(f);
    expect(after.created_at).toBe(before.created_at);
    expect(after.absolute_expires_at).toBe(before.absolute_expires_at);
    expect((await row(old)).revoked_reason).toBe('rotated');

    // The new role is in force on the new id.
    expect((await createProject(f, 'acme')).statusCode).toBe(403);
  });

  it('rotates every device of the member, and delivers the new cookie even on a refused request', async () => {
    const owner = await h.cookieFor('owner@globex.test');
    const laptop = await h.cookieFor('viewer@globex.test');
    const phone = await h.cookieFor('viewer@globex.test');
    expect((await changeRole(owner, 'globex', await userId('viewer@globex.test'), 'member')).statusCode).toBe(204);

    const viaLaptop = await me(laptop);
    const laptopNext = newCookie(viaLaptop);
    expect(laptopNext).not.toBeNull();

    // The phone's first request after the change is one its new role does not allow: the
    // rotation must still reach the client, or the user is signed out by a 403.
    const refused = await app().inject({ method: 'PATCH', url: `/api/orgs/${h.orgId('globex')}/settings`, headers: { cookie: phone, origin: ORIGIN }, payload: { sessionIdleMinutes: 10 } });
    expect(refused.statusCode).toBe(403);
    const phoneNext = newCookie(refused);
    expect(phoneNext).not.toBeNull();
    expect(phoneNext).not.toBe(laptopNext);
    for (const c of [laptop, phone]) expect((await me(c)).statusCode).toBe(401);
    for (const c of [laptopNext, phoneNext]) expect((await me(c as string)).statusCode).toBe(200);
    const profile = await me(laptopNext as string);
    expect(profile.json<{ orgs: { slug: string; role: string }[] }>().orgs).toEqual([expect.objectContaining({ slug: 'globex', role: 'member' })]);
  });

  it('rotates a removed member\u2019s session, which no longer reaches the org', async () => {
    const admin = await h.cookieFor('admin@acme.test');
    const pv = await h.cookieFor('project-viewer@acme.test');
    const removed = await app().inject({
      method: 'DELETE', url: `/api/orgs/${h.orgId('acme')}/members/${await userId('project-viewer@acme.test')}`, headers: { cookie: admin, origin: ORIGIN },
    });
    expect(removed.statusCode).toBe(204);
    const res = await app().inject({ method: 'GET', url: `/api/orgs/${h.orgId('acme')}/projects`, headers: { cookie: pv } });
    expect(res.statusCode).toBe(404);
    const next = newCookie(res);
    expect(next).not.toBeNull();
    expect((await me(pv)).statusCode).toBe(401);
    const profile = await me(next as string);
    expect(profile.statusCode).toBe(200);
    expect(profile.json<{ orgs: unknown[] }>().orgs).toEqual([]);
  });

  it('changes the password: other sessions end, the current one gets a new id', async () => {
    const user = h.user('globex', 'admin');
    const current = await h.login(user);
    const other = await h.login(user);
    const before = await row(current);
    h.clock.advance(10 * MIN);
    const res = await changePassword(current, user.password, NEW_PASSWORD);
    expect(res.statusCode).toBe(204);
    const fresh = newCookie(res);
    expect(fresh).not.toBeNull();
    expect(fresh).not.toBe(current);
    expect((await me(current)).statusCode).toBe(401);
    expect((await me(other)).statusCode).toBe(401);
    expect((await me(fresh as string)).statusCode).toBe(200);
    const after = await row(fresh as string);
    expect(after.absolute_expires_at).toBe(before.absolute_expires_at);
    expect((await row(other)).revoked_reason).toBe('password_changed');
    expect((await row(current)).revoked_reason).toBe('rotated');

    const login = (password: string) =>
      app().inject({ method: 'POST', url: '/api/auth/login', headers: { origin: ORIGIN }, payload: { email: user.email, password } });
    expect((await login(user.password)).statusCode).toBe(401);
    expect((await login(NEW_PASSWORD)).statusCode).toBe(200);
    const evidence = await h.t.owner.query<{ n: number }>(
      `select count(*)::int as n from audit_events where action = 'auth.password_changed' and target_id = $1`, [await userId(user.email)],
    );
    expect(evidence[0]?.n).toBe(1);
  });

  it('refuses a wrong current password with 401 and changes nothing', async () => {
    const user = h.user('acme', 'owner');
    const current = await h.cookieFor(user.email);
    const other = await h.cookieFor(user.email);
    const res = await changePassword(current, `${user.password}-nope`, NEW_PASSWORD);
    expect(res.statusCode).toBe(401);
    expect(res.json<Problem>().code).toBe('invalid_credentials');
    expect(newCookie(res)).toBeNull();
    expect((await me(current)).statusCode).toBe(200);
    expect((await me(other)).statusCode).toBe(200);
    const failed = await h.t.owner.query<{ result: string }>(
      `select result from audit_events where action = 'auth.password_change_failed' and target_id = $1`, [await userId(user.email)],
    );
    expect(failed).toEqual([{ result: 'failure' }]);
  });

  it('refuses a weak or unchanged new password with 422 and keeps the sessions', async () => {
    const user = h.user('acme', 'viewer');
    const current = await h.cookieFor(user.email);
    const other = await h.cookieFor(user.email);
    for (const next of ['short', 'password1234', 'qwertyuiop123', 'x'.repeat(129), user.password]) {
      const res = await changePassword(current, user.password, next);
      expect(res.statusCode, next).toBe(422);
      expect(res.json<Problem>().code).toBe('weak_password');
    }
    expect((await me(current)).statusCode).toBe(200);
    expect((await me(other)).statusCode).toBe(200);
    const missing = await app().inject({ method: 'POST', url: '/api/me/password', headers: { cookie: current, origin: ORIGIN }, payload: { newPassword: NEW_PASSWORD } });
    expect(missing.statusCode).toBe(400);
  });

  it('keeps an org\u2019s idle expiry across a rotation', async () => {
    const owner = await h.cookieFor('owner@acme.test');
    expect((await app().inject({ method: 'PATCH', url: `/api/orgs/${h.orgId('acme')}/settings`, headers: { cookie: owner, origin: ORIGIN }, payload: { sessionIdleMinutes: 5 } })).statusCode).toBe(200);
    try {
      const admin = await h.cookieFor('admin@acme.test');
      h.clock.advance(6 * MIN);
      // A pending rotation must not reset the idle clock of the org it is refused by.
      const fresh = await h.cookieFor('owner@acme.test');
      expect((await changeRole(fresh, 'acme', await userId('admin@acme.test'), 'member')).statusCode).toBe(204);
      const res = await app().inject({ method: 'GET', url: `/api/orgs/${h.orgId('acme')}/projects`, headers: { cookie: admin } });
      expect(res.statusCode).toBe(401);
      expect(res.json<Problem>().code).toBe('session_expired');
      const rotated = newCookie(res);
      expect(rotated).not.toBeNull();
      const retry = await app().inject({ method: 'GET', url: `/api/orgs/${h.orgId('acme')}/projects`, headers: { cookie: rotated as string } });
      expect(retry.statusCode).toBe(401);
      expect((await me(rotated as string)).statusCode).toBe(200);
    } finally {
      const reset = await app().inject({
        method: 'PATCH', url: `/api/orgs/${h.orgId('acme')}/settings`, headers: { cookie: await h.cookieFor('owner@acme.test'), origin: ORIGIN }, payload: { sessionIdleMinutes: null },
      });
      expect(reset.statusCode).toBe(200);
    }
  });
});
