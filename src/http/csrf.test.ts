import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp, type Problem } from '../../test/support/app.js';
import { ENGINES } from '../../test/support/db.js';

describe.each(ENGINES)('CSRF defence on %s', (engine) => {
  let h: TestApp;
  let cookie: string;
  let acme: string;
  beforeAll(async () => {
    h = await createTestApp(engine);
    cookie = await h.cookieFor('owner@acme.test');
    acme = h.orgId('acme');
  });
  afterAll(async () => h?.close());

  const projectCount = async (): Promise<number> =>
    (await h.t.owner.query<{ n: number }>('select count(*)::int as n from projects where org_id = $1', [acme]))[0]?.n ?? -1;
  const createProject = (headers: Record<string, string>, name = 'CSRF probe') =>
    h.built.app.inject({ method: 'POST', url: `/api/orgs/${acme}/projects`, headers, payload: { name } });

  async function expectRejected(headers: Record<string, string>) {
    const before = await projectCount();
    const res = await createProject(headers);
    expect(res.statusCode, JSON.stringify(headers)).toBe(403);
    expect(res.headers['content-type']).toContain('application/problem+json');
    expect(res.json<Problem>()).toMatchObject({ code: 'csrf_rejected', status: 403, type: 'https://palisade.dev/problems/csrf_rejected' });
    expect(await projectCount()).toBe(before);
  }

  it('refuses a cookie-authenticated mutation with neither Origin nor Referer', async () => {
    await expectRejected({ cookie });
    const res = await createProject({ cookie });
    expect(res.json<Problem>().detail).toBe('Origin or Referer is required');
  });

  it.each([
    ['a foreign site', 'https://evil.example'],
    ['a look-alike suffix', 'https://palisade.test.evil.example'],
    ['a look-alike prefix', 'https://evilpalisade.test'],
    ['the same host over http', 'http://palisade.test'],
    ['the same host on another port', 'https://palisade.test:8443'],
    ['the opaque null origin', 'null'],
    ['garbage', 'not a url'],
  ])('refuses Origin from %s', async (_label, origin) => {
    await expectRejected({ cookie, origin });
  });

  it('accepts the allowed Origin', async () => {
    const before = await projectCount();
    const res = await createProject({ cookie, origin: ORIGIN }, 'Allowed origin');
    expect(res.statusCode).toBe(201);
    expect(await projectCount()).toBe(before + 1);
  });

  it('falls back to Referer when Origin is absent', async () => {
    const ok = await createProject({ cookie, referer: `${ORIGIN}/console/projects?tab=new#x` }, 'Via referer');
    expect(ok.statusCode).toBe(201);
    await expectRejected({ cookie, referer: 'https://evil.example/palisade.test/' });
    await expectRejected({ cookie, referer: 'https://palisade.test.evil.example/' });
    await expectRejected({ cookie, referer: '/relative/path' });
  });

  it('trusts Origin over Referer', async () => {
    await expectRejected({ cookie, origin: 'https://evil.example', referer: `${ORIGIN}/console` });
    const ok = await createProject({ cookie, origin: ORIGIN, referer: 'https://elsewhere.example/' }, 'Origin wins');
    expect(ok.statusCode).toBe(201);
  });

  it('checks every state-changing method, and only those', async () => {
    const project = (await h.t.owner.query<{ id: string }>('select id from projects where org_id = $1 limit 1', [acme]))[0]?.id ?? '';
    const sessions = await h.t.owner.query<{ id: string }>('select id from sessions limit 1', []);
    const attempts = [
      { method: 'PATCH' as const, url: `/api/orgs/${acme}/projects/${project}`, payload: { name: 'Renamed by CSRF' } },
      { method: 'DELETE' as const, url: `/api/orgs/${acme}/projects/${project}` },
      { method: 'PATCH' as const, url: `/api/orgs/${acme}/settings`, payload: { sessionIdleMinutes: 1 } },
      { method: 'DELETE' as const, url: `/api/me/sessions/${sessions[0]?.id ?? ''}` },
      { method: 'POST' as const, url: '/api/me/password', payload: { currentPassword: 'x', newPassword: 'attacker chosen passphrase' } },
      { method: 'POST' as const, url: '/api/auth/logout' },
      { method: 'PUT' as const, url: `/api/orgs/${acme}/projects/${project}/members/${project}` },
    ];
    for (const a of attempts) {
      for (const headers of [{ cookie }, { cookie, origin: 'https://evil.example' }]) {
        const res = await h.built.app.inject({ ...a, headers });
        expect(res.statusCode, `${a.method} ${a.url} ${JSON.stringify(headers)}`).toBe(403);
        expect(res.json<Problem>().code).toBe('csrf_rejected');
      }
    }
    const names = await h.t.owner.query<{ name: string }>('select name from projects where id = $1', [project]);
    expect(names[0]?.name).not.toBe('Renamed by CSRF');
    const settings = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${acme}/settings`, headers: { cookie } });
    expect(settings.json<{ sessionIdleMinutes: number | null }>().sessionIdleMinutes).toBeNull();
    // Reads are not state-changing: a foreign Origin on a GET is answered (CORS decides what the page may read).
    const read = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${acme}/projects`, headers: { cookie, origin: 'https://evil.example' } });
    expect(read.statusCode).toBe(200);
    expect(read.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('refuses a foreign Origin even without a cookie (login CSRF)', async () => {
    const owner = h.user('acme', 'owner');
    const res = await h.built.app.inject({
      method: 'POST', url: '/api/auth/login', headers: { origin: 'https://evil.example' }, payload: { email: owner.email, password: owner.password },
    });
    expect(res.statusCode).toBe(403);
    expect(res.json<Problem>().code).toBe('csrf_rejected');
    expect(res.headers['set-cookie']).toBeUndefined();
    const viaReferer = await h.built.app.inject({
      method: 'POST', url: '/api/auth/login', headers: { referer: 'https://evil.example/login' }, payload: { email: owner.email, password: owner.password },
    });
    expect(viaReferer.statusCode).toBe(403);
    const register = await h.built.app.inject({
      method: 'POST', url: '/api/auth/register', headers: { origin: 'https://evil.example' },
      payload: { email: 'csrf-victim@example.com', password: 'correct horse battery staple', name: 'Victim' },
    });
    expect(register.statusCode).toBe(403);
    expect(await h.hasUser('csrf-victim@example.com')).toBe(false);
  });

  it('lets a non-browser client without Origin or cookie sign in', async () => {
    const owner = h.user('acme', 'owner');
    const res = await h.built.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: owner.email, password: owner.password } });
    expect(res.statusCode).toBe(200);
  });

  it('refuses a public mutation that carries the session cookie but no Origin', async () => {
    const res = await h.built.app.inject({ method: 'POST', url: '/api/auth/password-reset/request', headers: { cookie }, payload: { email: 'owner@acme.test' } });
    expect(res.statusCode).toBe(403);
    expect(res.json<Problem>().code).toBe('csrf_rejected');
    const mail = await h.t.db.withSystem('test', (tx) => h.built.services.mail.read(tx, 'owner@acme.test'));
    expect(mail).toEqual([]);
  });

  it('checks CSRF before authentication: a bad cookie with a foreign Origin is a 403, not a 401', async () => {
    const res = await createProject({ cookie: '__Host-palisade_session=garbage', origin: 'https://evil.example' });
    expect(res.statusCode).toBe(403);
    expect(res.json<Problem>().code).toBe('csrf_rejected');
    const allowed = await createProject({ cookie: '__Host-palisade_session=garbage', origin: ORIGIN });
    expect(allowed.statusCode).toBe(401);
  });
});
