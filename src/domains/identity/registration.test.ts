import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp, SESSION_COOKIE, type Problem } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';

const SESSION = SESSION_COOKIE;
const GOOD_PASSWORD = 'correct horse battery staple';

describe.each(ENGINES)('registration on %s', (engine) => {
  let h: TestApp;
  let n = 0;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  const fresh = () => {
    n += 1;
    return { email: `new-${n}@example.com`, password: GOOD_PASSWORD, name: `New User ${n}`, orgName: `New Org ${n}`, orgSlug: `new-org-${n}` };
  };
  const register = (payload: unknown, headers: Record<string, string> = {}) =>
    h.built.app.inject({ method: 'POST', url: '/api/auth/register', headers: { origin: ORIGIN, ...headers }, payload: payload as object });
  const count = async (sql: string, params: unknown[]) => (await h.t.owner.query<{ n: number }>(sql, params))[0]?.n;
  const orgCount = () => count('select count(*)::int as n from organizations', []);
  const userCount = () => count('select count(*)::int as n from users', []);

  it('creates the user, an org they own and a signed-in session', async () => {
    const body = fresh();
    const res = await register({ ...body, email: `  ${body.email.toUpperCase()} ` });
    expect(res.statusCode).toBe(201);
    const out = res.json<{ user: { id: string; email: string; name: string }; orgId: string }>();
    expect(out.user).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), email: body.email, name: body.name });

    const cookie = res.cookies.find((c) => c.name === SESSION);
    expect(cookie?.value).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
    const me = await h.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie: `${SESSION}=${cookie?.value}` } });
    expect(me.statusCode).toBe(200);
    expect(me.json()).toMatchObject({
      user: out.user,
      orgs: [{ id: out.orgId, slug: body.orgSlug, name: body.orgName, role: 'owner' }],
    });

    const members = await h.t.owner.query<{ user_id: string; role: string }>('select user_id, role from memberships where org_id = $1', [out.orgId]);
    expect(members).toEqual([{ user_id: out.user.id, role: 'owner' }]);
    const stored = await h.t.owner.query<{ password_hash: string }>('select password_hash from users where id = $1', [out.user.id]);
    expect(stored[0]?.password_hash).toMatch(/^\$argon2id\$/);
    expect(stored[0]?.password_hash).not.toContain(GOOD_PASSWORD);
    const sessions = await h.t.owner.query<{ n: number }>('select count(*)::int as n from sessions where user_id = $1 and revoked_at is null', [out.user.id]);
    expect(sessions[0]?.n).toBe(1);

    const orgEvents = await h.t.owner.query<{ action: string; actor_id: string }>(
      'select action, actor_id from audit_events where org_id = $1 order by seq', [out.orgId],
    );
    expect(orgEvents).toEqual([
      { action: 'org.created', actor_id: out.user.id },
      { action: 'auth.registered', actor_id: out.user.id },
    ]);
  });

  it.each([
    ['11 characters', 'Tr0ub4dor&3', 'use at least 12 characters'],
    ['129 characters', 'x7'.repeat(64) + 'q', 'use at most 128 characters'],
    ['a common password', 'password1234', 'this password is too common'],
    ['a keyboard walk', 'qwertyuiop123', 'this password is too common'],
    ['a repeated pattern', 'abababababababab', 'this password is too simple'],
  ])('refuses a weak password (%s) with 422 and writes nothing', async (_label, password, detail) => {
    const [orgsBefore, usersBefore] = [await orgCount(), await userCount()];
    const body = { ...fresh(), password };
    const res = await register(body);
    expect(res.statusCode).toBe(422);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json<Problem>()).toMatchObject({ code: 'weak_password', status: 422, detail });
    expect(res.headers['set-cookie']).toBeUndefined();
    expect([await orgCount(), await userCount()]).toEqual([orgsBefore, usersBefore]);
  });

  it('refuses an email that already has an account with 409 and creates no second org', async () => {
    const [orgsBefore, usersBefore] = [await orgCount(), await userCount()];
    for (const email of ['owner@acme.test', 'OWNER@Acme.Test']) {
      const body = { ...fresh(), email };
      const res = await register(body);
      expect(res.statusCode).toBe(409);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.json<Problem>()).toMatchObject({ code: 'conflict', status: 409 });
      expect(res.headers['set-cookie']).toBeUndefined();
      const slugRows = await h.t.owner.query<{ n: number }>('select count(*)::int as n from organizations where slug = $1', [body.orgSlug]);
      expect(slugRows[0]?.n).toBe(0);
    }
    expect([await orgCount(), await userCount()]).toEqual([orgsBefore, usersBefore]);
    const owners = await h.t.owner.query<{ n: number }>(
      `select count(*)::int as n from memberships m join users u on u.id = m.user_id where u.email = 'owner@acme.test'`, [],
    );
    expect(owners[0]?.n).toBe(1);
  });

  it('refuses a taken org slug with 409 and rolls the new user back', async () => {
    const [orgsBefore, usersBefore] = [await orgCount(), await userCount()];
    const body = { ...fresh(), orgSlug: 'acme' };
    const res = await register(body);
    expect(res.statusCode).toBe(409);
    expect(res.json<Problem>().code).toBe('conflict');
    const users = await h.t.owner.query<{ n: number }>('select count(*)::int as n from users where email = $1', [body.email]);
    expect(users[0]?.n).toBe(0);
    expect([await orgCount(), await userCount()]).toEqual([orgsBefore, usersBefore]);
    // The same email works once the slug is free: nothing half-written blocks it.
    expect((await register({ ...body, orgSlug: `${body.orgSlug}-b` })).statusCode).toBe(201);
  });

  it.each([
    ['a missing field', () => { const { email: _omit, ...rest } = fresh(); return rest; }, 'body.email'],
    ['an unknown field', () => ({ ...fresh(), role: 'admin' }), 'body'],
    ['an invalid email', () => ({ ...fresh(), email: 'not-an-email' }), 'body.email'],
    ['an uppercase slug', () => ({ ...fresh(), orgSlug: 'Bad_Slug' }), 'body.orgSlug'],
    ['a control character in the name', () => ({ ...fresh(), name: 'Eve\u0000' }), 'body.name'],
    ['a 101-character org name', () => ({ ...fresh(), orgName: 'o'.repeat(101) }), 'body.orgName'],
    ['a number for the password', () => ({ ...fresh(), password: 123456789012345 }), 'body.password'],
    ['a 1025-character password', () => ({ ...fresh(), password: 'p'.repeat(1025) }), 'body.password'],
    ['an array body', () => [fresh()], 'body'],
  ])('answers 400 validation_failed problem+json for %s', async (_label, make, path) => {
    const usersBefore = await userCount();
    const res = await register(make());
    expect(res.statusCode).toBe(400);
    expect(res.headers['content-type']).toContain('application/problem+json');
    const problem = res.json<Problem>();
    expect(problem).toMatchObject({ code: 'validation_failed', status: 400, type: 'https://palisade.dev/problems/validation_failed' });
    expect(problem.errors?.map((e) => e.path)).toContain(path);
    expect(await userCount()).toBe(usersBefore);
  });

  it('refuses an org name without a slug (and the reverse) with 400 and writes nothing', async () => {
    const usersBefore = await userCount();
    const { orgSlug: _s, ...noSlug } = fresh();
    const { orgName: _n, ...noName } = fresh();
    for (const body of [noSlug, noName]) {
      const res = await register(body);
      expect(res.statusCode).toBe(400);
      expect(res.json<Problem>()).toMatchObject({ code: 'validation_failed', detail: 'orgName and orgSlug go together' });
    }
    expect(await userCount()).toBe(usersBefore);
  });

  it('registers without an org (joining by invitation): a session, no membership', async () => {
    const { orgName: _n, orgSlug: _s, ...body } = fresh();
    const orgsBefore = await orgCount();
    const res = await register(body);
    expect(res.statusCode).toBe(201);
    expect(res.json<{ orgId: string | null }>().orgId).toBeNull();
    const cookie = res.cookies.find((c) => c.name === SESSION);
    const me = await h.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie: `${SESSION}=${cookie?.value}` } });
    expect(me.json()).toMatchObject({ user: { email: body.email }, orgs: [] });
    expect(await orgCount()).toBe(orgsBefore);
  });

  it('answers 400 malformed_request for bodies that are not JSON, and 415 for other media types', async () => {
    for (const payload of ['{"email": "a@b.c", ', '', 'null']) {
      const res = await h.built.app.inject({
        method: 'POST', url: '/api/auth/register', headers: { origin: ORIGIN, 'content-type': 'application/json' }, payload,
      });
      expect(res.statusCode).toBe(400);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(['malformed_request', 'validation_failed']).toContain(res.json<Problem>().code);
    }
    const broken = await h.built.app.inject({
      method: 'POST', url: '/api/auth/register', headers: { origin: ORIGIN, 'content-type': 'application/json' }, payload: '{"email": ',
    });
    expect(broken.json<Problem>()).toMatchObject({ code: 'malformed_request', title: 'The request could not be read' });
    const form = await h.built.app.inject({
      method: 'POST', url: '/api/auth/register', headers: { origin: ORIGIN, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'email=a%40b.c',
    });
    expect(form.statusCode).toBe(415);
    expect(form.json<Problem>().code).toBe('unsupported_media_type');
  });

  it('answers 413 for a body above the limit without reading it', async () => {
    const res = await register({ ...fresh(), name: 'n'.repeat(70 * 1024) });
    expect(res.statusCode).toBe(413);
    expect(res.json<Problem>().code).toBe('payload_too_large');
  });
});
