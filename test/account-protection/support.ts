/**
 * Shared helpers for the account-protection attack suites: users with a real password, the
 * HTTP calls of each flow (with a chosen client address), MFA enrollment through the API, and
 * the evidence (audit rows, database rows) the tests read back.
 */
import { Writable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { buildApp, type BuiltApp } from '../../src/app.js';
import { newId } from '../../src/crypto/index.js';
import type { Database } from '../../src/db/database.js';
import { openDatabase } from '../../src/db/open.js';
import { hashPassword, totpCodeAt } from '../../src/domains/identity/index.js';
import { createLogger } from '../../src/logging.js';
import { ORIGIN, SESSION_COOKIE, testConfig, type Problem, type TestApp } from '../support/app.js';
import { TEST_RUNTIME_ROLE } from '../support/db.js';

export { ORIGIN, SESSION_COOKIE, type Problem };
export const SYSTEM_ORG = '00000000-0000-0000-0000-000000000000';
export const PASSWORD = 'correct horse battery staple 42';
export const WRONG = 'incorrect horse battery staple 42';

let hashed: Promise<string> | null = null;
let serial = 0;

export interface TestUser {
  id: string;
  email: string;
  password: string;
}

/**
 * A fresh user with PASSWORD (one argon2 hash per process), optionally a member of `orgId`.
 * Written directly, as an account that verified its address long ago: these suites are about
 * lockout, factors and limits, and registering through the API would spend the very limits they
 * measure (test/support/accounts.ts `signUp` is the real flow).
 */
export async function passwordUser(h: TestApp, orgId?: string, role = 'member'): Promise<TestUser> {
  hashed ??= hashPassword(PASSWORD);
  const id = newId();
  const email = `ap-${(serial++).toString(36)}-${id.slice(0, 8)}@example.test`;
  await h.t.owner.query('insert into users (id, email, name, password_hash, password_changed_at, email_verified_at) values ($1, $2, $3, $4, now(), now())', [
    id, email, 'AP user', await hashed,
  ]);
  if (orgId) await h.t.owner.query('insert into memberships (org_id, user_id, role) values ($1, $2, $3)', [orgId, id, role]);
  return { id, email, password: PASSWORD };
}

/** A fresh org owned by a fresh user (created through the API). */
export async function freshOrg(h: TestApp): Promise<{ orgId: string; owner: TestUser; cookie: string }> {
  const owner = await passwordUser(h);
  const cookie = await h.cookieFor(owner.email);
  const res = await call(h, 'POST', '/api/orgs', { cookie, payload: { name: 'AP org', slug: `ap-${newId().slice(0, 12)}` } });
  if (res.statusCode !== 201) throw new Error(`org creation failed: ${res.statusCode} ${res.body}`);
  return { orgId: res.json<{ id: string }>().id, owner, cookie };
}

export interface CallOpts {
  cookie?: string;
  payload?: unknown;
  ip?: string;
  headers?: Record<string, string>;
}

/** One request as a browser would send it (allowed Origin), from `ip` when given. */
export function call(h: TestApp, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, o: CallOpts = {}): Promise<LightMyRequestResponse> {
  return h.built.app.inject({
    method,
    url,
    headers: { origin: ORIGIN, ...(o.cookie ? { cookie: o.cookie } : {}), ...o.headers },
    ...(o.payload === undefined ? {} : { payload: o.payload as object }),
    ...(o.ip ? { remoteAddress: o.ip } : {}),
  });
}

export const code = (res: LightMyRequestResponse): string | undefined => (res.headers['content-type']?.toString().includes('json') ? res.json<Problem>().code : undefined);

/** The session cookie a response set, as a Cookie header, or null. */
export function sessionFrom(res: LightMyRequestResponse): string | null {
  const c = res.cookies.find((x) => x.name === SESSION_COOKIE);
  return c ? `${SESSION_COOKIE}=${c.value}` : null;
}

export const login = (h: TestApp, email: string, password: string, o: Omit<CallOpts, 'payload'> = {}) =>
  call(h, 'POST', '/api/auth/login', { ...o, payload: { email, password } });

export const verifyMfa = (h: TestApp, mfaToken: string, proof: { code?: string; recoveryCode?: string }, o: Omit<CallOpts, 'payload'> = {}) =>
  call(h, 'POST', '/api/auth/mfa/verify', { ...o, payload: { mfaToken, ...proof } });

export const stepUp = (h: TestApp, cookie: string, body: Record<string, string>) => call(h, 'POST', '/api/auth/step-up', { cookie, payload: body });

/** The password step of an account with MFA: the pending token. */
export async function pendingToken(h: TestApp, user: TestUser): Promise<string> {
  const res = await login(h, user.email, user.password);
  if (res.statusCode !== 200 || !res.json<{ mfaRequired?: boolean }>().mfaRequired) throw new Error(`expected a pending sign-in: ${res.statusCode} ${res.body}`);
  return res.json<{ mfaToken: string }>().mfaToken;
}

export interface Enrolled {
  secret: string;
  otpauthUri: string;
  qrCode: string;
  recoveryCodes: string[];
  /** The session that enrolled (now MFA-verified and stepped up). */
  cookie: string;
}

/** Enrolls and confirms TOTP through the API with a fresh password session. */
export async function enrollTotp(h: TestApp, user: TestUser, cookie?: string): Promise<Enrolled> {
  const c = cookie ?? (await h.cookieFor(user.email));
  const start = await call(h, 'POST', '/api/me/mfa/totp', { cookie: c });
  if (start.statusCode !== 201) throw new Error(`enroll failed: ${start.statusCode} ${start.body}`);
  const e = start.json<{ secret: string; otpauthUri: string; qrCode: string }>();
  const confirm = await call(h, 'POST', '/api/me/mfa/totp/confirm', { cookie: c, payload: { code: totpCodeAt(e.secret, h.clock.now()) } });
  if (confirm.statusCode !== 200) throw new Error(`confirm failed: ${confirm.statusCode} ${confirm.body}`);
  return { ...e, recoveryCodes: confirm.json<{ recoveryCodes: string[] }>().recoveryCodes, cookie: c };
}

/**
 * A code for a step no code was accepted in yet: the clock moves on 30 s first (every accepted
 * code raises the account's last step, and an older or equal step is refused as a replay).
 */
export function nextCode(h: TestApp, secret: string): string {
  h.clock.advance(30_000);
  return totpCodeAt(secret, h.clock.now());
}

/** A TOTP code guaranteed wrong at the current time (and within ±1 step). */
export function wrongCode(h: TestApp, secret: string): string {
  const now = h.clock.now().getTime();
  const valid = new Set([-30_000, 0, 30_000].map((d) => totpCodeAt(secret, new Date(now + d))));
  for (let i = 0; ; i++) {
    const c = String((123_456 + i * 7919) % 1_000_000).padStart(6, '0');
    if (!valid.has(c)) return c;
  }
}

/** Full two-step sign-in: the session cookie. */
export async function signInWithMfa(h: TestApp, user: TestUser, secret: string): Promise<string> {
  const token = await pendingToken(h, user);
  const res = await verifyMfa(h, token, { code: nextCode(h, secret) });
  const cookie = sessionFrom(res);
  if (res.statusCode !== 200 || !cookie) throw new Error(`mfa verify failed: ${res.statusCode} ${res.body}`);
  return cookie;
}

export interface AuditRow {
  action: string;
  result: string;
  actor_id: string | null;
  target_id: string | null;
  ip: string;
  details: Record<string, unknown>;
}

export async function audit(h: TestApp, orgId: string, action: string, targetId?: string): Promise<AuditRow[]> {
  const list = await h.t.owner.query<AuditRow>(
    `select action, result, actor_id, target_id, ip, details from audit_events where org_id = $1 and action = $2 ${targetId ? 'and target_id = $3' : ''} order by seq`,
    targetId ? [orgId, action, targetId] : [orgId, action],
  );
  return list.map((r) => ({ ...r, details: typeof r.details === 'string' ? (JSON.parse(r.details) as Record<string, unknown>) : r.details }));
}

export async function lockState(h: TestApp, userId: string): Promise<{ failed_logins: number; locked_until: Date | null }> {
  const [r] = await h.t.owner.query<{ failed_logins: number; locked_until: Date | null }>('select failed_logins, locked_until from users where id = $1', [userId]);
  if (!r) throw new Error('no user');
  return r;
}

/** Ignores the request id, which differs per answer. */
export const sameProblem = (res: LightMyRequestResponse) => ({ ...res.json<Problem>(), requestId: 'x' });

/**
 * A second server instance on the same database: its own app, limiter and, on PostgreSQL, its
 * own connection pool (PGlite has one connection, so there it shares the database object).
 */
export async function secondInstance(h: TestApp, config: Record<string, string> = {}): Promise<{ built: BuiltApp; close(): Promise<void> }> {
  let db: Database = h.t.db;
  let closeDb = async (): Promise<void> => undefined;
  if (h.t.engine === 'postgres' && h.t.ownerUrl && h.t.runtimeUrl) {
    const opened = await openDatabase(
      { kind: 'postgres', ownerUrl: h.t.ownerUrl, runtimeUrl: h.t.runtimeUrl, runtimeRole: TEST_RUNTIME_ROLE, runtimePassword: null, poolSize: 8 },
      { migrate: false },
    );
    db = opened.db;
    closeDb = async () => {
      await opened.db.close();
      await opened.owner.close();
    };
  }
  const sink = new Writable({ write: (_c, _e, cb) => cb() });
  const built = await buildApp({ config: testConfig(config), db, clock: h.clock, logger: createLogger('info', sink) });
  return {
    built,
    async close() {
      await built.app.close();
      await closeDb();
    },
  };
}

// ---- a Redis server of our own, to stop ----------------------------------------------------

export { freePort, killHard, startRedis } from '../support/redis.js';

export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

/** A random documentation-range address, so that limiter keys never collide across runs. */
export function randomIp(): string {
  const b = () => Math.floor(Math.random() * 250) + 1;
  return `198.18.${b()}.${b()}`;
}
