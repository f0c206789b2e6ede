import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp, SESSION_COOKIE, type Problem } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { sha256Hex } from '../../crypto/index.js';

const SESSION = SESSION_COOKIE;
const MIN = 60_000;

describe.each(ENGINES)('session expiry on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  const me = (cookie: string) => h.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie } });
  const projects = (cookie: string, org: string) => h.built.app.inject({ method: 'GET', url: `/api/orgs/${h.orgId(org)}/projects`, headers: { cookie } });
  const lastSeen = async (cookie: string): Promise<number> => {
    const secret = cookie.slice(SESSION.length + 1, SESSION.length + 44);
    // Touches are written behind the request (sessions/touches.ts).
    await h.built.services.sessionTouches.settled();
    const r = await h.t.owner.query<{ last_seen_at: Date | string }>('select last_seen_at from sessions where token_hash = $1', [sha256Hex(secret)]);
    return new Date(r[0]?.last_seen_at ?? 0).getTime();
  };
  const settings = (cookie: string, org: string, body: object) =>
    h.built.app.inject({ method: 'PATCH', url: `/api/orgs/${h.orgId(org)}/settings`, headers: { cookie, origin: ORIGIN }, payload: body });

  it('expires a session idle for more than 30 minutes', async () => {
    const idle = await h.cookieFor('member@acme.test');
    const fresh = await h.cookieFor('viewer@acme.test');
    h.clock.advance(29 * MIN);
    expect((await me(fresh)).statusCode).toBe(200);
    h.clock.advance(2 * MIN);
    const res = await me(idle);
    expect(res.statusCode).toBe(401);
    expect(res.json<Problem>().code).toBe('unauthenticated');
    expect((await projects(idle, 'acme')).statusCode).toBe(401);
    // The other one was used 2 minutes ago: still alive.
    expect((await me(fresh)).statusCode).toBe(200);
  });

  it('slides: activity within the idle window keeps a session alive past 30 minutes in total', async () => {
    const cookie = await h.cookieFor('admin@acme.test');
    h.clock.advance(20 * MIN);
    expect((await me(cookie)).statusCode).toBe(200);
    h.clock.advance(20 * MIN);
    expect((await projects(cookie, 'acme')).statusCode).toBe(200);
    h.clock.advance(20 * MIN);
    expect((await me(cookie)).statusCode).toBe(200);
    h.clock.advance(31 * MIN);
    expect((await me(cookie)).statusCode).toBe(401);
  });

  it('writes last_seen at most once per minute', async () => {
    const cookie = await h.cookieFor('viewer@globex.test');
    const issued = await lastSeen(cookie);
    expect(issued).toBe(h.clock.now().getTime());
    h.clock.advance(30_000);
    expect((await me(cookie)).statusCode).toBe(200);
    expect(await lastSeen(cookie)).toBe(issued);
    h.clock.advance(30_000);
    expect((await me(cookie)).statusCode).toBe(200);
    expect(await lastSeen(cookie)).toBe(issued + 60_000);
    h.clock.advance(59_000);
    expect((await me(cookie)).statusCode).toBe(200);
    expect(await lastSeen(cookie)).toBe(issued + 60_000);
  });

  it('ends a session 8 hours after it started, however active it was', async () => {
    const cookie = await h.cookieFor('owner@globex.test');
    for (let i = 0; i < 16; i++) {
      h.clock.advance(29 * MIN);
      expect((await me(cookie)).statusCode, `after ${(i + 1) * 29} min`).toBe(200);
    }
    h.clock.advance(15 * MIN); // 479 min
    expect((await projects(cookie, 'globex')).statusCode).toBe(200);
    h.clock.advance(1 * MIN); // 480 min
    const res = await me(cookie);
    expect(res.statusCode).toBe(401);
    expect(res.json<Problem>().code).toBe('unauthenticated');
    expect((await projects(cookie, 'globex')).statusCode).toBe(401);
  });

  it('lets an org demand a shorter idle limit on its own routes only', async () => {
    const owner = await h.cookieFor('owner@globex.test');
    const set = await settings(owner, 'globex', { sessionIdleMinutes: 5 });
    expect(set.statusCode).toBe(200);
    try {
      const read = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${h.orgId('globex')}/settings`, headers: { cookie: owner } });
      expect(read.json()).toMatchObject({ sessionIdleMinutes: 5 });

      const member = await h.cookieFor('member@globex.test');
      h.clock.advance(4 * MIN);
      expect((await projects(member, 'globex')).statusCode).toBe(200);

      h.clock.advance(6 * MIN);
      const expired = await projects(member, 'globex');
      expect(expired.statusCode).toBe(401);
      expect(expired.headers['content-type']).toContain('application/problem+json');
      expect(expired.json<Problem>()).toMatchObject({ code: 'session_expired', status: 401 });
      // The deployment-wide session is still valid: /api/me answers.
      expect((await me(member)).statusCode).toBe(200);
      // Retrying, or having touched the session elsewhere, does not revive it for this org.
      const retry = await projects(member, 'globex');
      expect(retry.statusCode).toBe(401);
      expect(retry.json<Problem>().code).toBe('session_expired');

      // An org without the policy is unaffected (a user in both orgs keeps acme access).
      const acmeMember = await h.cookieFor('member@acme.test');
      h.clock.advance(6 * MIN);
      expect((await projects(acmeMember, 'acme')).statusCode).toBe(200);

      // A fresh session of the same member works in globex again.
      expect((await projects(await h.cookieFor('member@globex.test'), 'globex')).statusCode).toBe(200);
    } finally {
      const reset = await settings(await h.cookieFor('owner@globex.test'), 'globex', { sessionIdleMinutes: null });
      expect(reset.statusCode).toBe(200);
    }
  });

  it('lets an org demand a shorter absolute limit', async () => {
    const owner = await h.cookieFor('owner@acme.test');
    expect((await settings(owner, 'acme', { sessionAbsoluteHours: 1 })).statusCode).toBe(200);
    try {
      const viewer = await h.cookieFor('viewer@acme.test');
      for (let i = 0; i < 3; i++) {
        h.clock.advance(20 * MIN);
        expect((await projects(viewer, 'acme')).statusCode, `after ${(i + 1) * 20} min`).toBe(200);
      }
      h.clock.advance(1 * MIN);
      const res = await projects(viewer, 'acme');
      expect(res.statusCode).toBe(401);
      expect(res.json<Problem>().code).toBe('session_expired');
      expect((await me(viewer)).statusCode).toBe(200);
    } finally {
      expect((await settings(await h.cookieFor('owner@acme.test'), 'acme', { sessionAbsoluteHours: null })).statusCode).toBe(200);
    }
  });

  it('does not list expired sessions among the user\u2019s sessions', async () => {
    const old = await h.cookieFor('project-viewer@acme.test');
    h.clock.advance(31 * MIN);
    const current = await h.cookieFor('project-viewer@acme.test');
    const res = await h.built.app.inject({ method: 'GET', url: '/api/me/sessions', headers: { cookie: current } });
    const list = res.json<{ sessions: { current: boolean }[] }>().sessions;
    expect(list).toHaveLength(1);
    expect(list[0]?.current).toBe(true);
    expect((await me(old)).statusCode).toBe(401);
  });
});
