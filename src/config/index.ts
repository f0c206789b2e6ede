import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { normalizeCidr } from '../kernel/ip.js';
import { z } from 'zod';
import { parseKeks, randomKey, type Kek, type KekProviderSettings } from '../crypto/index.js';
import { ConfigError } from './errors.js';
import { kekSettings, readKekDir } from './keks.js';
import { mailConfig, type MailConfig } from './mail.js';
import { resolveFileSettings } from './setting.js';
import { socialConfig, type SocialConfig } from './social.js';
import { uploadConfig, type UploadConfig } from './uploads.js';

export { ConfigError };

export type { MailConfig, SmtpSettings } from './mail.js';
export type { ClamdAddress, FileStoreSettings, UploadConfig, UploadPlan } from './uploads.js';
export { parseByteSize, parseClamdAddress } from './uploads.js';
export type { SocialConfig, SocialProvider, SocialOidcProvider, SocialGithubProvider } from './social.js';

/**
 * The only reader of process.env. Produces a frozen, typed config and refuses settings that
 * are unsafe in production: generated dev keys, plain-http origins, wildcard credentialed CORS.
 */

export type Env = 'development' | 'test' | 'production';

export interface Config {
  env: Env;
  host: string;
  port: number;
  publicOrigin: string;
  allowedOrigins: readonly string[];
  corsOrigins: readonly string[] | '*';
  trustedProxies: readonly string[];
  database:
    | { kind: 'pglite'; dataDir: string | null; runtimeRole: string }
    | { kind: 'postgres'; ownerUrl: string; runtimeUrl: string; runtimeRole: string; runtimePassword: string | null; poolSize: number;
        /** How long an unused pool connection stays open (PALISADE_DB_POOL_IDLE_SECONDS); absent: 30 s. */
        poolIdleSeconds?: number;
        /** Authentication results cached in process, invalidated by NOTIFY (db/auth-cache.ts); absent: on. */
        authCache?: boolean };
  /** KEK material held in process (providers env and file); empty with pkcs11, whose KEKs never leave the token. */
  keks: readonly Kek[];
  /** Where the KEKs live (PALISADE_KEK_PROVIDER): the keyring is opened from this and `keks` (openKeyring). */
  kekProvider: KekProviderSettings;
  sessionSecret: Buffer;
  /** Plain-http loopback development only: cookie without `__Host-` and `Secure`. */
  insecureLocalhostCookies: boolean;
  session: { idleSeconds: number; absoluteSeconds: number; touchIntervalSeconds: number };
  /** Failed attempts (password, TOTP, recovery code) before the account locks, and for how long. */
  lockout: { threshold: number; seconds: number };
  /** Rate limits count in Redis when set; in process memory otherwise (one instance only). */
  redisUrl: string | null;
  /** How long a rate-limit decision waits for Redis before the per-process backstop decides. */
  redisLimitTimeoutMs: number;
  /** Overrides of the rate-limit policies (RATE_LIMITS="login=10/60,authenticated=600/60"); names checked by the limiter. */
  rateLimits: Readonly<Record<string, { limit: number; windowSeconds: number }>>;
  /** WebAuthn relying party: its id (a registrable domain, never an IP) and the origins it accepts. */
  webauthn: { rpId: string; rpName: string; origins: readonly string[] };
  /**
   * Outbound webhooks. `allowLoopback`: the development and test opt-in to deliver to loopback
   * addresses (a receiver on this machine); production refuses it. Private, link-local and
   * metadata addresses are refused always.
   */
  webhooks: { allowLoopback: boolean };
  /**
   * The Prometheus listener, separate from the API's (the API never serves /metrics); null when
   * METRICS_PORT is unset: no listener at all, in every environment. `token`: the bearer token
   * every scrape must present; required unless the listener is bound to loopback.
   */
  metrics: { host: string; port: number; token: string | null } | null;
  /**
   * Audit checkpoints: the file that chain heads are appended to (ship it off the machine), and
   * how often the server writes the heads of the chains it appended to (and at shutdown).
   */
  auditCheckpoints: { file: string; intervalSeconds: number };
  /**
   * Per-org data keys: the worker rotates an org's key after `rotationDays` (0: only on request),
   * and a retired key can be made active again for `rollbackDays` before it is destroyed. A
   * deleted org can be restored for `orgDeletionGraceDays`; then its keys are destroyed.
   */
  dataKeys: { rotationDays: number; rollbackDays: number; orgDeletionGraceDays: number };
  /**
   * Tenant exports: where the encrypted archives are written (every process that serves or runs
   * the job must see the same directory), how long a download link lives and an archive is kept.
   */
  exports: { dir: string; linkMinutes: number; retentionDays: number };
  /**
   * The DNS servers asked for domain verification records (`ip` or `ip:port`, IPv6 as
   * `[addr]:port`); empty: the system's resolvers.
   */
  dnsServers: readonly string[];
  /** Social sign-in (SOCIAL_*): the providers the deployment enabled, and whether they may create accounts. */
  social: SocialConfig;
  /** Mail (SMTP_URL, MAIL_FROM): an SMTP transport, or none (the development outbox only). */
  mail: MailConfig;
  /** File uploads (PALISADE_CLAMD, PALISADE_FILE_STORE, PALISADE_UPLOAD_PLANS…): config/uploads.ts. */
  uploads: UploadConfig;
  logLevel: string;
  stateDir: string;
  generatedDevSecrets: boolean;
}

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).optional(),
  PALISADE_ENV: z.enum(['development', 'test', 'production']).optional(),
  HOST: z.string().default('127.0.0.1'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  PUBLIC_ORIGIN: z.string().optional(),
  CORS_ORIGINS: z.string().optional(),
  TRUSTED_PROXIES: z.string().optional(),
  DATABASE_URL: z.string().optional(),
  DATABASE_RUNTIME_URL: z.string().optional(),
  PALISADE_DB_RUNTIME_ROLE: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/).default('palisade_app'),
  PALISADE_DB_RUNTIME_PASSWORD: z.string().optional(),
  PALISADE_DB_POOL_SIZE: z.coerce.number().int().min(1).max(200).default(20),
  PALISADE_DB_POOL_IDLE_SECONDS: z.coerce.number().int().min(1).max(86_400).default(30),
  PALISADE_AUTH_CACHE: z.enum(['on', 'off']).default('on'),
  PALISADE_DATA_DIR: z.string().optional(),
  PALISADE_STATE_DIR: z.string().default('.palisade'),
  PALISADE_KEKS: z.string().optional(),
  PALISADE_SESSION_SECRET: z.string().optional(),
  PALISADE_INSECURE_LOCALHOST_COOKIES: z.enum(['true', 'false']).optional(),
  SESSION_IDLE_MINUTES: z.coerce.number().int().min(1).max(24 * 60).default(30),
  SESSION_ABSOLUTE_HOURS: z.coerce.number().int().min(1).max(24 * 30).default(8),
  LOCKOUT_THRESHOLD: z.coerce.number().int().min(1).max(100).default(5),
  LOCKOUT_MINUTES: z.coerce.number().int().min(1).max(24 * 60).default(30),
  REDIS_URL: z.string().optional(),
  REDIS_LIMIT_TIMEOUT_MS: z.coerce.number().int().min(5).max(5000).default(50),
  RATE_LIMITS: z.string().optional(),
  WEBAUTHN_RP_ID: z.string().optional(),
  WEBAUTHN_RP_NAME: z.string().default('Palisade'),
  PALISADE_WEBHOOKS_ALLOW_LOOPBACK: z.enum(['true', 'false']).optional(),
  METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  METRICS_HOST: z.string().min(1).optional(),
  PALISADE_METRICS_TOKEN: z.string().optional(),
  PALISADE_AUDIT_CHECKPOINT_FILE: z.string().min(1).optional(),
  PALISADE_AUDIT_CHECKPOINT_MINUTES: z.coerce.number().int().min(1).max(24 * 60).default(5),
  PALISADE_DATA_KEY_ROTATION_DAYS: z.coerce.number().int().min(0).max(3650).default(90),
  PALISADE_DATA_KEY_ROLLBACK_DAYS: z.coerce.number().int().min(1).max(365).default(30),
  PALISADE_ORG_DELETION_GRACE_DAYS: z.coerce.number().int().min(1).max(365).default(30),
  PALISADE_EXPORT_DIR: z.string().min(1).optional(),
  PALISADE_EXPORT_LINK_MINUTES: z.coerce.number().int().min(1).max(24 * 60).default(15),
  PALISADE_EXPORT_RETENTION_DAYS: z.coerce.number().int().min(1).max(90).default(7),
  DNS_SERVERS: z.string().optional(),
  LOG_LEVEL: z.string().default('info'),
});

function parseRateLimits(spec: string): Record<string, { limit: number; windowSeconds: number }> {
  const out: Record<string, { limit: number; windowSeconds: number }> = {};
  for (const part of spec.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([a-z-]+)=(\d+)\/(\d+)$/.exec(part);
    if (!m) throw new ConfigError(`RATE_LIMITS: "${part}" is not policy=limit/seconds`);
    out[m[1] as string] = { limit: Number(m[2]), windowSeconds: Number(m[3]) };
  }
  return Object.freeze(out);
}

/**
 * One checkpoint file per embedded database: a PGlite directory other than the default keeps its
 * checkpoints beside it (like its demo logins), so a second database started with the same state
 * directory never makes `audit verify` of the first report chains it never had.
 */
function defaultCheckpointFile(stateDir: string, database: Config['database']): string {
  const shared = join(stateDir, 'audit-checkpoints.jsonl');
  if (database.kind !== 'pglite' || database.dataDir === null || database.dataDir === resolve(join(stateDir, 'data'))) return shared;
  return `${database.dataDir}.audit-checkpoints.jsonl`;
}

function isDnsServer(entry: string): boolean {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+))(?::(\d{1,5}))?$/.exec(entry) ?? /^([0-9a-fA-F:]+)()$/.exec(entry);
  if (!m) return false;
  const host = m[1] || m[2] || '';
  const port = m[3] === undefined ? 53 : Number(m[3]);
  return isIP(host) !== 0 && port >= 1 && port <= 65535;
}

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Metrics show per-route request and failure counts: operational data an attacker uses to time
 * and tune an attack (review R4 finding 8). They live on a listener of their own, never on the
 * API's, and a listener other hosts can reach needs a bearer token. Messages never echo the token.
 */
function metricsListener(e: { PORT: number; METRICS_PORT?: number; METRICS_HOST?: string; PALISADE_METRICS_TOKEN?: string }): Config['metrics'] {
  const token = e.PALISADE_METRICS_TOKEN ?? null;
  if (e.METRICS_PORT === undefined) {
    if (token !== null || e.METRICS_HOST !== undefined) {
      throw new ConfigError('PALISADE_METRICS_TOKEN and METRICS_HOST need METRICS_PORT: /metrics is served only on its own listener');
    }
    return null;
  }
  if (e.METRICS_PORT === e.PORT) throw new ConfigError('METRICS_PORT must differ from PORT: the API listener never serves /metrics');
  // Printable ASCII (it travels in a header), long enough not to be guessed: `openssl rand -hex 32`.
  if (token !== null && !/^[\x21-\x7e]{32,512}$/.test(token)) {
    throw new ConfigError('PALISADE_METRICS_TOKEN must be 32 to 512 printable characters without spaces (e.g. openssl rand -hex 32)');
  }
  const host = e.METRICS_HOST ?? '127.0.0.1';
  if (token === null && !isLoopbackHost(host)) {
    throw new ConfigError(`METRICS_HOST ${host} is reachable from other hosts: set PALISADE_METRICS_TOKEN, or bind the metrics listener to loopback`);
  }
  return Object.freeze({ host, port: e.METRICS_PORT, token });
}

function isLoopbackHttp(origin: string): boolean {
  try {
    const u = new URL(origin);
    return u.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(u.hostname);
  } catch {
    return false;
  }
}

function normalizeOrigin(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ConfigError(`invalid origin: ${raw}`);
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new ConfigError(`origin must be http(s): ${raw}`);
  if (u.pathname !== '/' || u.search || u.hash || u.username) throw new ConfigError(`origin must have no path: ${raw}`);
  return u.origin;
}

function splitList(v: string | undefined): string[] {
  return (v ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

interface DevSecrets {
  kek: string;
  sessionSecret: string;
}

/** Development keys are generated once and kept in the state dir so that sealed data survives restarts. */
function loadDevSecrets(stateDir: string): DevSecrets {
  const file = join(stateDir, 'dev-secrets.json');
  if (existsSync(file)) return JSON.parse(readFileSync(file, 'utf8')) as DevSecrets;
  const secrets: DevSecrets = { kek: randomKey().toString('base64'), sessionSecret: randomKey().toString('base64') };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(secrets), { mode: 0o600 });
  return secrets;
}

function withUser(url: string, user: string, password: string | null): string {
  const u = new URL(url);
  u.username = user;
  u.password = password ?? '';
  return u.toString();
}

export function loadConfig(raw: Record<string, string | undefined> = process.env): Config {
  // Every `NAME_FILE` first: from here on a secret is read as `NAME`, wherever it came from.
  const fileProblems: string[] = [];
  const source = resolveFileSettings(raw, fileProblems);
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => i.path.join('.')).join(', ');
    throw ConfigError.of([...fileProblems, `invalid configuration: ${fields}`]);
  }
  const e = parsed.data;
  // Refusals are collected and reported together: an operator fixing a production environment
  // should not learn them one start at a time. A refused value is replaced by a harmless
  // fallback only so that the remaining checks can run; the result is never returned.
  const refusals: string[] = [...fileProblems];
  const attempt = <T>(fn: () => T, fallback: T): T => {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      refusals.push(...err.problems);
      return fallback;
    }
  };
  const refuse = (message: string): void => {
    refusals.push(message);
  };
  // Either variable saying production means production: one cannot switch the other's checks off.
  const env: Env = e.PALISADE_ENV === 'production' || e.NODE_ENV === 'production' ? 'production' : (e.PALISADE_ENV ?? e.NODE_ENV ?? 'development');
  const prod = env === 'production';
  const stateDir = resolve(e.PALISADE_STATE_DIR);

  // An invalid origin is refused; the fallback (never used) keeps it from adding an https refusal.
  const publicOrigin = attempt(() => normalizeOrigin(e.PUBLIC_ORIGIN ?? `http://localhost:${e.PORT}`), 'https://invalid.invalid');
  if (prod && !publicOrigin.startsWith('https:')) refuse('production needs an https PUBLIC_ORIGIN');

  const corsRaw = splitList(e.CORS_ORIGINS);
  let corsOrigins: readonly string[] | '*';
  if (corsRaw.includes('*')) {
    if (env !== 'development') refuse('wildcard credentialed CORS is refused outside development');
    corsOrigins = '*';
  } else {
    corsOrigins = corsRaw.flatMap((o) => attempt(() => [normalizeOrigin(o)], []));
  }
  const allowed = new Set<string>([publicOrigin, ...(corsOrigins === '*' ? [] : corsOrigins)]);
  if (!prod && isLoopbackHttp(publicOrigin)) {
    const port = new URL(publicOrigin).port;
    for (const h of ['localhost', '127.0.0.1', '[::1]']) allowed.add(`http://${h}${port ? `:${port}` : ''}`);
  }

  const trustedProxies = splitList(e.TRUSTED_PROXIES);
  for (const p of trustedProxies) {
    // The allowlist's strict parser: no octal, short or hex IPv4 forms that mean another address.
    const ok = normalizeCidr(p) !== null;
    if (!ok) refuse(`TRUSTED_PROXIES entry is not an IP or CIDR: ${p}`);
  }

  const dnsServers = splitList(e.DNS_SERVERS);
  for (const d of dnsServers) if (!isDnsServer(d)) refuse(`DNS_SERVERS entry is not ip, ip:port or [ipv6]:port: ${d}`);

  let generatedDevSecrets = false;
  let keks: Kek[] = [];
  let sessionSecret: Buffer;
  let dev: DevSecrets | null = null;
  const devSecrets = (): DevSecrets => (dev ??= loadDevSecrets(stateDir));
  const kekProvider = kekSettings(source, refuse);
  if (kekProvider.kind === 'file') {
    keks = attempt(() => readKekDir(kekProvider.dir, source.PALISADE_KEK_ACTIVE), []);
  } else if (kekProvider.kind === 'pkcs11') {
    if (e.PALISADE_KEKS) refuse('PALISADE_KEKS is set but PALISADE_KEK_PROVIDER=pkcs11 keeps the KEKs in the token: remove PALISADE_KEKS');
  } else if (e.PALISADE_KEKS) {
    try {
      keks = parseKeks(e.PALISADE_KEKS);
      if (keks.length === 0) refuse('PALISADE_KEKS is empty');
    } catch (err) {
      refuse(`PALISADE_KEKS: ${(err as Error).message}`);
    }
  } else if (prod) {
    refuse('production needs PALISADE_KEKS (generated development keys are refused)');
  } else {
    keks = [{ id: 'dev', key: Buffer.from(devSecrets().kek, 'base64') }];
    generatedDevSecrets = true;
  }
  if (e.PALISADE_SESSION_SECRET) {
    sessionSecret = Buffer.from(e.PALISADE_SESSION_SECRET, 'base64');
    if (sessionSecret.length < 32) refuse('PALISADE_SESSION_SECRET must be at least 32 bytes (base64)');
  } else if (prod) {
    refuse('production needs PALISADE_SESSION_SECRET');
    sessionSecret = Buffer.alloc(0);
  } else {
    sessionSecret = Buffer.from(devSecrets().sessionSecret, 'base64');
    generatedDevSecrets = true;
  }

  const insecureRequested = e.PALISADE_INSECURE_LOCALHOST_COOKIES;
  let insecureLocalhostCookies = insecureRequested === undefined ? !prod && isLoopbackHttp(publicOrigin) : insecureRequested === 'true';
  if (insecureLocalhostCookies && (prod || !isLoopbackHttp(publicOrigin))) {
    refuse('PALISADE_INSECURE_LOCALHOST_COOKIES is only allowed for a plain-http loopback origin outside production');
  }
  if (!isLoopbackHttp(publicOrigin)) insecureLocalhostCookies = false;

  const allowLoopback = e.PALISADE_WEBHOOKS_ALLOW_LOOPBACK === 'true';
  if (allowLoopback && prod) refuse('PALISADE_WEBHOOKS_ALLOW_LOOPBACK is a development opt-in: production refuses it');
  const rateLimits = attempt(() => parseRateLimits(e.RATE_LIMITS ?? ''), {});
  const metrics = attempt(() => metricsListener(e), null);
  const social = socialConfig(source, allowLoopback && !prod);
  refusals.push(...social.problems);
  const mail = mailConfig(source, prod, publicOrigin);
  refusals.push(...mail.problems);
  const uploads = uploadConfig(source, env, stateDir);
  refusals.push(...uploads.problems);
  if (refusals.length > 0) throw ConfigError.of(refusals);

  const runtimeRole = e.PALISADE_DB_RUNTIME_ROLE;
  const database: Config['database'] = e.DATABASE_URL
    ? {
        kind: 'postgres',
        ownerUrl: e.DATABASE_URL,
        runtimeUrl: e.DATABASE_RUNTIME_URL ?? withUser(e.DATABASE_URL, runtimeRole, e.PALISADE_DB_RUNTIME_PASSWORD ?? null),
        runtimeRole,
        runtimePassword: e.PALISADE_DB_RUNTIME_PASSWORD ?? null,
        poolSize: e.PALISADE_DB_POOL_SIZE,
        poolIdleSeconds: e.PALISADE_DB_POOL_IDLE_SECONDS,
        authCache: e.PALISADE_AUTH_CACHE === 'on',
      }
    : { kind: 'pglite', dataDir: e.PALISADE_DATA_DIR === 'memory' ? null : resolve(e.PALISADE_DATA_DIR ?? join(stateDir, 'data')), runtimeRole };

  return Object.freeze({
    env,
    host: e.HOST,
    port: e.PORT,
    publicOrigin,
    allowedOrigins: Object.freeze([...allowed]),
    corsOrigins,
    trustedProxies: Object.freeze(trustedProxies),
    database,
    keks: Object.freeze(keks),
    kekProvider,
    sessionSecret,
    insecureLocalhostCookies,
    // last_seen_at is written at most once per touch interval: a quarter of the idle limit, at most a minute.
    session: {
      idleSeconds: e.SESSION_IDLE_MINUTES * 60,
      absoluteSeconds: e.SESSION_ABSOLUTE_HOURS * 3600,
      touchIntervalSeconds: Math.min(60, (e.SESSION_IDLE_MINUTES * 60) / 4),
    },
    lockout: { threshold: e.LOCKOUT_THRESHOLD, seconds: e.LOCKOUT_MINUTES * 60 },
    redisUrl: e.REDIS_URL ?? null,
    redisLimitTimeoutMs: e.REDIS_LIMIT_TIMEOUT_MS,
    rateLimits,
    webauthn: Object.freeze({
      rpId: e.WEBAUTHN_RP_ID ?? new URL(publicOrigin).hostname,
      rpName: e.WEBAUTHN_RP_NAME,
      origins: Object.freeze([publicOrigin]),
    }),
    webhooks: Object.freeze({ allowLoopback }),
    metrics,
    auditCheckpoints: Object.freeze({
      file: resolve(e.PALISADE_AUDIT_CHECKPOINT_FILE ?? defaultCheckpointFile(stateDir, database)),
      intervalSeconds: e.PALISADE_AUDIT_CHECKPOINT_MINUTES * 60,
    }),
    dataKeys: Object.freeze({
      rotationDays: e.PALISADE_DATA_KEY_ROTATION_DAYS, rollbackDays: e.PALISADE_DATA_KEY_ROLLBACK_DAYS, orgDeletionGraceDays: e.PALISADE_ORG_DELETION_GRACE_DAYS,
    }),
    exports: Object.freeze({
      dir: resolve(e.PALISADE_EXPORT_DIR ?? join(stateDir, 'exports')),
      linkMinutes: e.PALISADE_EXPORT_LINK_MINUTES,
      retentionDays: e.PALISADE_EXPORT_RETENTION_DAYS,
    }),
    dnsServers: Object.freeze(dnsServers),
    social: social.social,
    mail: mail.mail,
    uploads: uploads.uploads,
    logLevel: e.LOG_LEVEL,
    stateDir,
    generatedDevSecrets,
  });
}
