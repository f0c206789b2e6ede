import { Writable } from 'node:stream';
import type { Logger } from 'pino';
import { sql } from 'kysely';
import { buildApp, type AppConfig, type BuiltApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { RATE_LIMIT_POLICIES } from '../../src/http/route.js';
import { ManualClock, type Clock } from '../../src/kernel/clock.js';
import { systemContext } from '../../src/kernel/context.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';
import { createLogger } from '../../src/logging.js';
import { newId } from '../../src/crypto/index.js';
import { insertUserSql, personOf, userWithEmail } from '../../src/domains/identity/people.js';
import { seedDemo, type DemoCredential, type DemoData, type DemoLogin } from '../../src/demo.js';
import { hashPassword } from '../../src/domains/identity/index.js';
import { randomToken } from '../../src/crypto/index.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import type { Engine } from '../../src/db/database.js';

export const ORIGIN = 'https://palisade.test';

/** The key-encryption key of every test app (PALISADE_KEKS), for suites that seal or chain beside it. */
export const TEST_KEK = { id: 'k1', key: Buffer.alloc(32, 7) };

/** Test config: production-like cookies (`__Host-`, Secure) on an https public origin. */
export const RELAXED_LIMITS = RATE_LIMIT_POLICIES
  .map((p) => `${p}=100000/60`)
  .join(',');

export function testConfig(overrides: Record<string, string> = {}): AppConfig {
  return loadConfig({
    PALISADE_ENV: 'test',
    PUBLIC_ORIGIN: ORIGIN,
    PALISADE_KEKS: `${TEST_KEK.id}:${TEST_KEK.key.toString('base64')}`,
    PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
    PALISADE_STATE_DIR: '/tmp/palisade-test-state',
    // Suites sign in far more often than a person; the limiter's own tests set real limits.
    RATE_LIMITS: RELAXED_LIMITS,
    ...overrides,
  });
}

export interface TestApp {
  t: TestDatabase;
  built: BuiltApp;
  clock: ManualClock;
  demo: DemoData;
  logs: string[];
  /** The logger whose lines land in `logs` (for listeners a test builds beside the app). */
  logger: Logger;
  /** A session cookie header for a demo user, issued directly (no argon2 round). */
  cookieFor(email: string): Promise<string>;
  login(who: DemoLogin | { email: string; password: string }): Promise<string>;
  /**
   * The id of the account with this address, found as the app finds it (addresses are sealed,
   * migration 039: by blind index). Throws when there is none; `hasUser` asks.
   */
  userId(email: string): Promise<string>;
  hasUser(email: string): Promise<boolean>;
  /**
   * Writes an account directly, sealed as the app seals one (a test's raw insert cannot: the
   * address and name are sealed, migration 039). `verified` marks the address proven now.
   */
  insertUser(u: { id?: string; email: string; name?: string; passwordHash?: string | null; verified?: boolean }): Promise<string>;
  /** The opened address and name of an account (null when there is none). */
  person(userId: string): Promise<{ email: string; name: string } | null>;
  user(org: string, role: DemoLogin['role']): DemoLogin;
  orgId(slug: string): string;
  close(): Promise<void>;
}

const demoCredentials = new Map<string, Promise<DemoCredential>>();

/**
 * One worker's demo passwords, random and hashed once, then given to every database it seeds:
 * twelve argon2id hashes were a third of a test app's start. Each database is still its own.
 */
function workerCredential(email: string): Promise<DemoCredential> {
  let c = demoCredentials.get(email);
  if (!c) {
    const password = `demo-${randomToken(12)}`;
    c = hashPassword(password).then((hash) => ({ password, hash }));
    demoCredentials.set(email, c);
  }
  return c;
}

/** Builds the real app on a fresh database of `engine`, seeded with the demo orgs. */
export async function createTestApp(
  engine: Engine,
  opts: { config?: Record<string, string>; clock?: Clock; memoryKeysPerPolicy?: number } = {},
): Promise<TestApp> {
  const t = await createTestDatabase(engine);
  const clock = (opts.clock as ManualClock | undefined) ?? new ManualClock(new Date());
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const logger = createLogger('info', sink);
  const built = await buildApp({ config: testConfig(opts.config), db: t.db, clock, logger, memoryKeysPerPolicy: opts.memoryKeysPerPolicy });
  const demo = await seedDemo(t.db, built.services, workerCredential);
  const cookieName = built.cookie.name;
  const userIds = new Map<string, string>();
  const { sealer } = built.services;
  const findUser = (email: string) => t.db.withSystem('test: find an account', async (tx) =>
    (await sql<{ id: string }>`select id from users where ${await userWithEmail(sealer, tx, email)}`.execute(tx)).rows[0]?.id ?? null);
  return {
    t, built, clock, demo, logs, logger,
    user(org, role) {
      const l = demo.logins.find((x) => x.org === org && x.role === role);
      if (!l) throw new Error(`no demo user ${org}/${role}`);
      return l;
    },
    orgId(slug) {
      const o = demo.orgs.find((x) => x.slug === slug);
      if (!o) throw new Error(`no demo org ${slug}`);
      return o.id;
    },
    async cookieFor(email) {
      let id = userIds.get(email);
      if (!id) {
        id = (await findUser(email)) ?? undefined;
        if (!id) throw new Error(`no user ${email}`);
        userIds.set(email, id);
      }
      const uid = id;
      const s = await t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => built.services.sessions.issue(tx, uid, systemContext('test'), { proof: { mfaVerified: false, steppedUpAt: clock.now() } }),
      );
      return `${cookieName}=${s.cookie}`;
    },
    async userId(email) {
      const id = await findUser(email);
      if (!id) throw new Error(`no user ${email}`);
      return id;
    },
    async insertUser(u) {
      const id = u.id ?? newId();
      const at = new Date().toISOString();
      await t.db.withSystem('test: write an account', async (tx) => {
        await (await insertUserSql(sealer, tx, id, { email: u.email, name: u.name ?? '' }, {
          password_hash: u.passwordHash ?? null, password_changed_at: u.passwordHash ? at : null, email_verified_at: u.verified ? at : null,
        })).execute(tx);
      });
      return id;
    },
    async hasUser(email) {
      return (await findUser(email)) !== null;
    },
    person(userId) {
      return t.db.withSystem('test: open an account', (tx) => personOf(sealer, tx, userId));
    },
    async login(who) {
      const res = await built.app.inject({
        method: 'POST', url: '/api/auth/login', headers: { origin: ORIGIN }, payload: { email: who.email, password: who.password },
      });
      if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
      const set = res.cookies.find((c) => c.name === cookieName);
      if (!set) throw new Error('no session cookie');
      return `${cookieName}=${set.value}`;
    },
    async close() {
      await built.app.close();
      await t.drop();
    },
  };
}

/** The session cookie name under testConfig (https origin: `__Host-` and Secure). */
export const SESSION_COOKIE = '__Host-palisade_session';

/** An RFC 9457 problem as the API answers it. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  requestId: string;
  detail?: string;
  errors?: { path: string; message: string }[];
}
