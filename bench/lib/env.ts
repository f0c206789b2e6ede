import { openDatabase, type OpenedDatabase } from '../../src/db/open.js';

/** Shared bench settings; every figure the bench prints is relative to a baseline measured in the same run. */
export const BENCH = {
  adminUrl: process.env.BENCH_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  dbName: process.env.BENCH_DB ?? 'palisade_bench',
  rows: Number(process.env.BENCH_ROWS ?? 1_000_000),
  tenants: 100,
  projectsPerTenant: 5,
  usersPerTenant: 2,
  seconds: Number(process.env.BENCH_SECONDS ?? 8),
  warmupSeconds: Number(process.env.BENCH_WARMUP ?? 3),
  rounds: Number(process.env.BENCH_ROUNDS ?? 3),
  connections: Number(process.env.BENCH_CONNECTIONS ?? 32),
  poolSize: Number(process.env.BENCH_POOL ?? 20),
  quick: process.env.BENCH_QUICK === '1',
  redisUrl: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
  auditEvents: Number(process.env.BENCH_AUDIT_EVENTS ?? 1_000_000),
  password: 'bench-password-not-secret-42',
  kek: `bench:${Buffer.alloc(32, 3).toString('base64')}`,
  sessionSecret: Buffer.alloc(32, 5).toString('base64'),
  runtimeRole: 'palisade_bench_app',
  /** The server's PUBLIC_ORIGIN: what a browser's Origin header says on console mutations. */
  publicOrigin: 'https://bench.palisade.test',
};

export function dbUrl(user = 'postgres', db = BENCH.dbName): string {
  const u = new URL(BENCH.adminUrl);
  u.pathname = `/${db}`;
  u.username = user;
  return u.toString();
}

/** The environment the real server runs with: production mode, the bench database. */
export function palisadeEnv(port: number): Record<string, string> {
  return {
    PALISADE_ENV: 'production',
    PORT: String(port),
    HOST: '127.0.0.1',
    // Loopback only: the bench reads the authentication cache's counters there (authCacheOf).
    METRICS_PORT: String(port + 1000),
    PUBLIC_ORIGIN: BENCH.publicOrigin,
    DATABASE_URL: dbUrl(),
    PALISADE_DB_RUNTIME_ROLE: BENCH.runtimeRole,
    PALISADE_DB_POOL_SIZE: String(BENCH.poolSize),
    PALISADE_KEKS: BENCH.kek,
    PALISADE_SESSION_SECRET: BENCH.sessionSecret,
    PALISADE_STATE_DIR: '/tmp/palisade-bench-state',
    LOG_LEVEL: 'warn',
    // The limiter runs (its cost is measured) but never refuses: the bench drives one address far
    // past a person's rate, and the login flood must reach argon2 to test CPU isolation.
    RATE_LIMITS: 'login=100000000/60,authenticated=100000000/60',
  };
}

/** Drops a bench's own database (the admin connection; `with (force)` ends what still holds it). */
export async function dropDatabase(name: string): Promise<void> {
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ connectionString: BENCH.adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.end();
}

/**
 * A new, empty database of that name (dropped first if a run left one), migrated by Palisade and
 * opened on the bench's runtime role. `settings`: per-database settings applied before migrating.
 */
export async function freshDatabase(name: string, poolSize: number, settings: Record<string, string> = {}): Promise<OpenedDatabase> {
  const { default: pg } = await import('pg');
  const admin = new pg.Client({ connectionString: BENCH.adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${name} with (force)`);
  await admin.query(`create database ${name}`);
  for (const [k, v] of Object.entries(settings)) await admin.query(`alter database ${name} set ${k} = ${pg.escapeLiteral(v)}`);
  await admin.end();
  return openDatabase(
    { kind: 'postgres', ownerUrl: dbUrl('postgres', name), runtimeUrl: dbUrl(BENCH.runtimeRole, name), runtimeRole: BENCH.runtimeRole, runtimePassword: null, poolSize },
    { migrate: true },
  );
}

/** Runs a bench script's main, printing the stack and exiting 1 on failure. */
export function runMain(main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}

/** The authentication cache's counters of a palisade contender (its metrics listener, PORT + 1000). */
export async function authCacheOf(port: number): Promise<{ hits: number; misses: number; stale: number; live: number } | null> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port + 1000}/metrics`)).text();
    const read = (name: string) => Number(new RegExp(`^palisade_auth_cache_${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    const out = { hits: read('hits'), misses: read('misses'), stale: read('stale'), live: read('live') };
    return Number.isNaN(out.hits) ? null : out;
  } catch {
    return null;
  }
}
