import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp, SESSION_COOKIE, type Problem } from '../../../test/support/app.js';
import { signUp } from '../../../test/support/accounts.js';
import { ENGINES } from '../../../test/support/db.js';
import { hmacSha256, randomToken, sha256Hex } from '../../crypto/index.js';

const SESSION = SESSION_COOKIE;
/** The session HMAC key of the test config (test/support/app.ts). */
const TEST_SESSION_KEY = Buffer.alloc(32, 9);

const valueOf = (cookie: string) => cookie.slice(SESSION.length + 1);
const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
const signWith = (key: Buffer, secret: string) => `${secret}.${hmacSha256(key, `palisade-session:${secret}`).toString('base64url')}`;

describe.each(ENGINES)('session verification on %s', (engine) => {
  let h: TestApp;
  let good: string;
  beforeAll(async () => {
    h = await createTestApp(engine);
    good = valueOf(await h.cookieFor('member@acme.test'));
  });
  afterAll(async () => h?.close());

  const me = (cookie?: string) => h.built.app.inject({ method: 'GET', url: '/api/me', headers: cookie === undefined ? {} : { cookie } });
  const projects = (cookie: string) => h.built.app.inject({ method: 'GET', url: `/api/orgs/${h.orgId('acme')}/projects`, headers: { cookie } });

  async function expectUnauthenticated(cookieHeader: string | undefined) {
    for (const res of [await me(cookieHeader), await projects(cookieHeader ?? '')]) {
      expect(res.statusCode, cookieHeader?.slice(0, 120)).toBe(401);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.json<Problem>()).toMatchObject({ code: 'unauthenticated', status: 401, title: 'Authentication required' });
      expect(res.headers['set-cookie']).toBeUndefined();
    }
  }

  it('accepts the genuine cookie', async () => {
    expect(good).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
    const res = await me(`${SESSION}=${good}`);
    expect(res.statusCode).toBe(200);
    expect(res.json<{ user: { email: string } }>().user.email).toBe('member@acme.test');
    expect((await projects(`${SESSION}=${good}`)).statusCode).toBe(200);
  });

  it('answers 401 problem+json without a cookie', async () => {
    await expectUnauthenticated(undefined);
    await expectUnauthenticated('other=1');
  });

  it.each([
    ['first char of the secret flipped', (v: string) => flip(v, 0)],
    ['last char of the secret flipped', (v: string) => flip(v, 42)],
    ['first char of the signature flipped', (v: string) => flip(v, 44)],
    ['last char of the signature flipped', (v: string) => flip(v, 86)],
    ['the separator replaced', (v: string) => `${v.slice(0, 43)}_${v.slice(44)}`],
    ['truncated by one', (v: string) => v.slice(0, -1)],
    ['secret only', (v: string) => v.slice(0, 43)],
    ['secret with an empty signature', (v: string) => v.slice(0, 44)],
    ['one extra character', (v: string) => `${v}A`],
    ['halves swapped', (v: string) => `${v.slice(44)}.${v.slice(0, 43)}`],
    ['upper-cased', (v: string) => v.toUpperCase()],
    ['URL-encoded', (v: string) => encodeURIComponent(`${v.slice(0, 43)}=${v.slice(44)}`)],
  ])('refuses the cookie with %s', async (_label, tamper) => {
    await expectUnauthenticated(`${SESSION}=${tamper(good)}`);
  });

  it.each([
    ['empty', ''],
    ['garbage', 'hello-world'],
    ['a JWT-looking value', 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.'],
    ['non-ASCII', 'é'.repeat(43) + '.' + 'é'.repeat(43)],
    ['SQL', "' or 1=1 --"],
    ['oversized (4 KB)', 'A'.repeat(4096)],
    ['oversized (64 KB)', `${'A'.repeat(43)}.${'B'.repeat(65_536)}`],
  ])('refuses a %s cookie', async (_label, value) => {
    await expectUnauthenticated(`${SESSION}=${value}`);
  });

  it('refuses a well-formed cookie signed with another key', async () => {
    const secret = good.slice(0, 43);
    await expectUnauthenticated(`${SESSION}=${signWith(Buffer.alloc(32, 8), secret)}`);
  });

  it('refuses a correctly signed cookie whose secret the store does not know', async () => {
    const forged = signWith(TEST_SESSION_KEY, randomToken(32));
    expect(forged).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{43}$/);
    await expectUnauthenticated(`${SESSION}=${forged}`);
    // Sanity: the same signing recipe reproduces the genuine cookie, so the refusal is the store's.
    expect(signWith(TEST_SESSION_KEY, good.slice(0, 43))).toBe(good);
  });

  it('does not accept the session under the development cookie name', async () => {
    await expectUnauthenticated(`palisade_session=${good}`);
    await expectUnauthenticated(`__Secure-palisade_session=${good}`);
  });

  it('does not mix up sessions: each cookie resolves to its own user', async () => {
    const viewer = await h.cookieFor('viewer@globex.test');
    const res = await me(viewer);
    expect(res.json<{ user: { email: string } }>().user.email).toBe('viewer@globex.test');
    const other = await me(`${SESSION}=${good}`);
    expect(other.json<{ user: { email: string } }>().user.email).toBe('member@acme.test');
  });

  it('stores only a SHA-256 of the secret: neither the secret nor the cookie is in the sessions table', async () => {
    const login = await h.login(h.user('acme', 'admin'));
    const value = valueOf(login);
    const secret = value.slice(0, 43);
    const signature = value.slice(44);
    const dump = JSON.stringify(await h.t.owner.query('select * from sessions', []));
    expect(dump).not.toContain(secret);
    expect(dump).not.toContain(signature);
    expect(dump).not.toContain(Buffer.from(secret, 'base64url').toString('hex'));
    const row = await h.t.owner.query<{ token_hash: string; user_id: string }>(
      'select s.token_hash, s.user_id from sessions s where s.token_hash = $1', [sha256Hex(secret)],
    );
    expect(row).toEqual([{ token_hash: sha256Hex(secret), user_id: await h.userId('admin@acme.test') }]);
    const types = await h.t.owner.query<{ column_name: string }>(
      `select column_name from information_schema.columns where table_schema = 'public' and table_name = 'sessions' order by column_name`, [],
    );
    expect(types.map((t) => t.column_name)).not.toContain('token');
  });

  it('refuses a session revoked by logout, even though its cookie is intact', async () => {
    const cookie = await h.login(h.user('globex', 'member'));
    expect((await me(cookie)).statusCode).toBe(200);
    const out = await h.built.app.inject({ method: 'POST', url: '/api/auth/logout', headers: { cookie, origin: ORIGIN } });
    expect(out.statusCode).toBe(204);
    await expectUnauthenticated(cookie);
    const row = await h.t.owner.query<{ revoked_reason: string }>('select revoked_reason from sessions where token_hash = $1', [sha256Hex(valueOf(cookie).slice(0, 43))]);
    expect(row).toEqual([{ revoked_reason: 'logout' }]);
  });

  it('refuses a session of a user who no longer exists', async () => {
    const { cookie } = await signUp(h, { email: 'shortlived@example.com', password: 'correct horse battery staple', name: 'Short Lived' });
    expect((await me(cookie)).statusCode).toBe(200);
    await h.t.owner.query('delete from users where id = $1', [await h.userId('shortlived@example.com')]);
    await expectUnauthenticated(cookie);
  });
});
