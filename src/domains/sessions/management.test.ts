import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp, SESSION_COOKIE, type Problem } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { sha256Hex } from '../../crypto/index.js';
import type { SessionView } from './service.js';
import { auditSelect } from '../../../test/support/evidence.js';

const SESSION = SESSION_COOKIE;

describe.each(ENGINES)('managing sessions on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  const app = () => h.built.app;
  const me = (cookie: string) => app().inject({ method: 'GET', url: '/api/me', headers: { cookie } });
  const list = async (cookie: string): Promise<SessionView[]> => {
    const res = await app().inject({ method: 'GET', url: '/api/me/sessions', headers: { cookie } });
    expect(res.statusCode).toBe(200);
    return res.json<{ sessions: SessionView[] }>().sessions;
  };
  const revokeOwn = (cookie: string, id: string) =>
    app().inject({ method: 'DELETE', url: `/api/me/sessions/${id}`, headers: { cookie, origin: ORIGIN } });
  const revokeMember = (cookie: string, org: string, userId: string) =>
    app().inject({ method: 'POST', url: `/api/orgs/${h.orgId(org)}/members/${userId}/sessions/revoke`, headers: { cookie, origin: ORIGIN } });
  const sessionId = async (cookie: string): Promise<string> => {
    const secret = cookie.slice(SESSION.length + 1, SESSION.length + 44);
    const r = await h.t.owner.query<{ id: string }>('select id from sessions where token_hash = $1', [sha256Hex(secret)]);
    if (!r[0]) throw new Error('no such session');
    return r[0].id;
  };
  const userId = (email: string): Promise<string> => h.userId(email);
  const loginAs = async (role: 'owner' | 'admin' | 'member' | 'viewer' | 'project_viewer' | 'restricted_member', org: string, ua: string) => {
    const u = h.user(org, role);
    const res = await app().inject({
      method: 'POST', url: '/api/auth/login', headers: { origin: ORIGIN, 'user-agent': ua }, payload: { email: u.email, password: u.password },
    });
    const c = res.cookies.find((x) => x.name === SESSION);
    if (!c) throw new Error(`login failed: ${res.body}`);
    return `${SESSION}=${c.value}`;
  };

  it('lists the caller\u2019s own live sessions and flags the current one', async () => {
    const a = await loginAs('viewer', 'acme', 'Browser A');
    const b = await loginAs('viewer', 'acme', 'Browser B');
    await loginAs('viewer', 'globex', 'Someone else');
    const [idA, idB] = [await sessionId(a), await sessionId(b)];

    const fromA = await list(a);
    expect(fromA.map((s) => s.id).sort()).toEqual([idA, idB].sort());
    expect(fromA.filter((s) => s.current).map((s) => s.id)).toEqual([idA]);
    const now = h.clock.now();
    expect(fromA.find((s) => s.id === idB)).toEqual({
      id: idB,
      createdAt: now.toISOString(),
      lastSeenAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + 8 * 3600_000).toISOString(),
      ip: '127.0.0.1',
      userAgent: 'Browser B',
      current: false,
    });
    const fromB = await list(b);
    expect(fromB.filter((s) => s.current).map((s) => s.id)).toEqual([idB]);
    // At rest the address and browser are sealed (system scope `sessions`, bound to the session).
    const [raw] = await h.t.owner.query<{ ip: string; user_agent: string; client_sealed: string }>('select ip, user_agent, client_sealed from sessions where id = $1', [idB]);
    expect(raw).toMatchObject({ ip: '', user_agent: '' });
    expect(raw?.client_sealed).toMatch(/^v1\./);
    expect(raw?.client_sealed).not.toContain('Browser');
    // Moved onto another session, it does not open there: the list shows nothing rather than B's.
    await h.t.owner.query('update sessions set client_sealed = $1 where id = $2', [raw?.client_sealed, idA]);
    expect((await list(a)).find((s) => s.id === idA)).toMatchObject({ ip: '', userAgent: '' });
  });

  it('revokes one of the caller\u2019s other sessions', async () => {
    const keep = await loginAs('member', 'acme', 'Laptop');
    const lost = await loginAs('member', 'acme', 'Stolen phone');
    const lostId = await sessionId(lost);
    const res = await revokeOwn(keep, lostId);
    expect(res.statusCode).toBe(204);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect((await me(lost)).statusCode).toBe(401);
    expect((await me(keep)).statusCode).toBe(200);
    expect((await list(keep)).map((s) => s.id)).not.toContain(lostId);
    const evidence = await h.t.owner.query<{ target_id: string; actor_id: string }>(
      `select target_id, actor_id from audit_events where action = 'auth.session_revoked' and target_id = $1`, [lostId],
    );
    expect(evidence).toEqual([{ target_id: lostId, actor_id: await userId('member@acme.test') }]);
    // Revoking it again: it is no longer a live session of the caller.
    expect((await revokeOwn(keep, lostId)).statusCode).toBe(404);
  });

  it('signs the caller out everywhere else in one request, leaving this session and other people\u2019s alone', async () => {
    const keep = await loginAs('admin', 'globex', 'Laptop');
    const others = [await loginAs('admin', 'globex', 'Phone'), await loginAs('admin', 'globex', 'Old tablet')];
    const bystander = await loginAs('owner', 'globex', 'Someone else');
    const res = await app().inject({ method: 'POST', url: '/api/me/sessions/revoke-others', headers: { cookie: keep, origin: ORIGIN } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ revoked: 2 });
    expect(res.headers['set-cookie']).toBeUndefined();
    for (const c of others) expect((await me(c)).statusCode).toBe(401);
    expect((await me(keep)).statusCode).toBe(200);
    expect((await me(bystander)).statusCode).toBe(200);
    expect((await list(keep)).map((s) => s.id)).toEqual([await sessionId(keep)]);
    const evidence = await auditSelect<{ actor_id: string; details: unknown }>(h, ['actor_id', 'details'], `where action = 'auth.other_sessions_revoked' and target_id = $1`, [await userId('admin@globex.test')],
    );
    expect(evidence).toEqual([{ actor_id: await userId('admin@globex.test'), details: { sessions: 2 } }]);
    // Nothing left to end: still an answer, not an error.
    const again = await app().inject({ method: 'POST', url: '/api/me/sessions/revoke-others', headers: { cookie: keep, origin: ORIGIN } });
    expect(again.json()).toEqual({ revoked: 0 });
    // A cross-site page cannot do it for the user (the CSRF defence), and nobody signed out can.
    const forged = await app().inject({ method: 'POST', url: '/api/me/sessions/revoke-others', headers: { cookie: keep, origin: 'https://evil.example' } });
    expect(forged.statusCode).toBe(403);
    const anonymous = await app().inject({ method: 'POST', url: '/api/me/sessions/revoke-others', headers: { origin: ORIGIN } });
    expect(anonymous.statusCode).toBe(401);
  });

  it('answers 404 for someone else\u2019s session id and leaves that session alone', async () => {
    const attacker = await loginAs('admin', 'acme', 'Attacker');
    const victim = await loginAs('owner', 'acme', 'Victim');
    const res = await revokeOwn(attacker, await sessionId(victim));
    expect(res.statusCode).toBe(404);
    expect(res.json<Problem>().code).toBe('not_found');
    expect((await me(victim)).statusCode).toBe(200);
    expect((await revokeOwn(attacker, '00000000-0000-4000-8000-000000000000')).statusCode).toBe(404);
    const bad = await revokeOwn(attacker, 'not-a-uuid');
    expect(bad.statusCode).toBe(400);
    expect(bad.json<Problem>().code).toBe('validation_failed');
  });

  it('revoking the current session clears the cookie', async () => {
    const cookie = await loginAs('project_viewer', 'acme', 'Kiosk');
    const res = await revokeOwn(cookie, await sessionId(cookie));
    expect(res.statusCode).toBe(204);
    const cleared = res.cookies.find((c) => c.name === SESSION);
    expect(cleared?.value).toBe('');
    expect((await me(cookie)).statusCode).toBe(401);
  });

  it('lets an admin sign a member out everywhere', async () => {
    const admin = await loginAs('admin', 'globex', 'Admin console');
    const m1 = await loginAs('member', 'globex', 'Member laptop');
    const m2 = await h.cookieFor('member@globex.test');
    const bystander = await loginAs('viewer', 'globex', 'Bystander');
    const member = await userId('member@globex.test');

    const res = await revokeMember(admin, 'globex', member);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ revoked: 2 });
    for (const c of [m1, m2]) {
      const after = await me(c);
      expect(after.statusCode).toBe(401);
      expect(after.json<Problem>().code).toBe('unauthenticated');
    }
    expect((await me(bystander)).statusCode).toBe(200);
    expect((await me(admin)).statusCode).toBe(200);
    const evidence = await auditSelect<{ org_id: string; target_id: string; details: { sessions: number } }>(h, ['org_id', 'target_id', 'details'], `where action = 'member.sessions_revoked'`, [],
    );
    expect(evidence).toEqual([{ org_id: h.orgId('globex'), target_id: member, details: { sessions: 2 } }]);
    const reasons = await h.t.owner.query<{ revoked_reason: string }>('select distinct revoked_reason from sessions where user_id = $1', [member]);
    expect(reasons).toEqual([{ revoked_reason: 'revoked_by_admin' }]);
  });

  it('refuses an admin signing out an owner (403), and lets an owner do it to an admin', async () => {
    const admin = await loginAs('admin', 'acme', 'Admin');
    const owner = await loginAs('owner', 'acme', 'Owner');
    const denied = await revokeMember(admin, 'acme', await userId('owner@acme.test'));
    expect(denied.statusCode).toBe(403);
    expect(denied.json<Problem>().code).toBe('privilege_escalation');
    expect((await me(owner)).statusCode).toBe(200);

    const allowed = await revokeMember(owner, 'acme', await userId('admin@acme.test'));
    expect(allowed.statusCode).toBe(200);
    expect(allowed.json<{ revoked: number }>().revoked).toBeGreaterThanOrEqual(1);
    expect((await me(admin)).statusCode).toBe(401);
    expect((await me(owner)).statusCode).toBe(200);
  });

  // review R4 finding 7: one rule for another member's credentials (assertCanActOnCredentials),
  // and its refusal is evidence like the pipeline's.
  it('records the refused sign-out of an owner in the org\u2019s audit trail', async () => {
    const admin = await h.cookieFor('admin@acme.test');
    const denied = await revokeMember(admin, 'acme', await userId('owner@acme.test'));
    expect(denied.json<Problem>()).toMatchObject({ code: 'privilege_escalation', detail: expect.stringContaining('owners:manage') });
    const [ev] = await auditSelect<{ actor_id: string; result: string; details: unknown }>(h, ['actor_id', 'result', 'details'], `where org_id = $1 and action = 'authz.denied' order by seq desc limit 1`, [h.orgId('acme')],
    );
    expect(ev).toEqual({
      actor_id: await userId('admin@acme.test'), result: 'denied',
      details: { route: 'POST /api/orgs/:orgId/members/:userId/sessions/revoke', reason: 'privilege_escalation' },
    });
  });

  it('refuses members without sessions:revoke and targets outside the org', async () => {
    const member = await h.cookieFor('restricted-member@acme.test');
    const viewer = await h.cookieFor('viewer@acme.test');
    const forbidden = await revokeMember(member, 'acme', await userId('viewer@acme.test'));
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json<Problem>().code).toBe('forbidden');
    expect((await me(viewer)).statusCode).toBe(200);

    const admin = await h.cookieFor('admin@acme.test');
    const outsider = await h.cookieFor('owner@globex.test');
    // A globex user is not an acme member: nothing to revoke there.
    const other = await revokeMember(admin, 'acme', await userId('owner@globex.test'));
    expect(other.statusCode).toBe(404);
    // And acme's admin cannot address globex at all.
    const cross = await revokeMember(admin, 'globex', await userId('viewer@globex.test'));
    expect(cross.statusCode).toBe(404);
    expect((await me(outsider)).statusCode).toBe(200);
  });
});
