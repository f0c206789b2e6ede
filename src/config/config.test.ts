import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cookieSettings } from '../app.js';
import { ConfigError, loadConfig } from './index.js';

const KEK = `k1:${Buffer.alloc(32, 7).toString('base64')}`;
const SECRET = Buffer.alloc(32, 9).toString('base64');
const stateDir = mkdtempSync(join(tmpdir(), 'palisade-config-'));
afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

/** A complete production environment; each test removes or breaks one piece of it. */
const prodEnv = (overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
  NODE_ENV: 'production',
  PUBLIC_ORIGIN: 'https://app.example.com',
  PALISADE_KEKS: KEK,
  PALISADE_SESSION_SECRET: SECRET,
  PALISADE_STATE_DIR: stateDir,
  ...overrides,
});

const devEnv = (overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
  NODE_ENV: 'development',
  PUBLIC_ORIGIN: 'http://127.0.0.1:3000',
  PALISADE_KEKS: KEK,
  PALISADE_SESSION_SECRET: SECRET,
  PALISADE_STATE_DIR: stateDir,
  ...overrides,
});

function refusal(env: Record<string, string | undefined>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('loadConfig accepted the configuration');
}

describe('loadConfig in production', () => {
  it('accepts a complete https configuration with secure cookies', () => {
    const c = loadConfig(prodEnv());
    expect(c.env).toBe('production');
    expect(c.publicOrigin).toBe('https://app.example.com');
    expect(c.allowedOrigins).toEqual(['https://app.example.com']);
    expect(c.insecureLocalhostCookies).toBe(false);
    expect(c.generatedDevSecrets).toBe(false);
    expect(c.keks.map((k) => k.id)).toEqual(['k1']);
    expect(c.sessionSecret.equals(Buffer.alloc(32, 9))).toBe(true);
    expect(c.session).toEqual({ idleSeconds: 1800, absoluteSeconds: 28_800, touchIntervalSeconds: 60 });
    expect(cookieSettings(c)).toEqual({ name: '__Host-palisade_session', secure: true });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('keeps unused PostgreSQL connections 30 s unless PALISADE_DB_POOL_IDLE_SECONDS says otherwise, and refuses 0', () => {
    const pg = (over: Record<string, string> = {}) => loadConfig(prodEnv({ DATABASE_URL: 'postgres://owner@db.internal/palisade', ...over })).database;
    expect(pg()).toMatchObject({ kind: 'postgres', poolSize: 20, poolIdleSeconds: 30 });
    expect(pg({ PALISADE_DB_POOL_IDLE_SECONDS: '600' })).toMatchObject({ poolIdleSeconds: 600 });
    expect(refusal(prodEnv({ DATABASE_URL: 'postgres://owner@db.internal/palisade', PALISADE_DB_POOL_IDLE_SECONDS: '0' }))).toContain('PALISADE_DB_POOL_IDLE_SECONDS');
  });

  it('refuses missing PALISADE_KEKS instead of generating a development key', () => {
    expect(refusal(prodEnv({ PALISADE_KEKS: undefined }))).toMatch(/PALISADE_KEKS/);
  });

  it('refuses a missing or short session secret', () => {
    expect(refusal(prodEnv({ PALISADE_SESSION_SECRET: undefined }))).toMatch(/PALISADE_SESSION_SECRET/);
    expect(refusal(prodEnv({ PALISADE_SESSION_SECRET: Buffer.alloc(31, 1).toString('base64') }))).toMatch(/at least 32 bytes/);
  });

  it('refuses a plain-http public origin, loopback included', () => {
    expect(refusal(prodEnv({ PUBLIC_ORIGIN: 'http://app.example.com' }))).toMatch(/https/);
    expect(refusal(prodEnv({ PUBLIC_ORIGIN: 'http://127.0.0.1:3000' }))).toMatch(/https/);
  });

  it('refuses the default origin (http://127.0.0.1:PORT) when PUBLIC_ORIGIN is unset', () => {
    expect(refusal(prodEnv({ PUBLIC_ORIGIN: undefined }))).toMatch(/https PUBLIC_ORIGIN/);
  });

  it('refuses PALISADE_INSECURE_LOCALHOST_COOKIES=true', () => {
    expect(refusal(prodEnv({ PALISADE_INSECURE_LOCALHOST_COOKIES: 'true' }))).toMatch(/PALISADE_INSECURE_LOCALHOST_COOKIES/);
  });

  it('refuses wildcard CORS outside development', () => {
    expect(refusal(prodEnv({ CORS_ORIGINS: '*' }))).toMatch(/wildcard/);
    expect(refusal(prodEnv({ CORS_ORIGINS: 'https://a.example.com, *' }))).toMatch(/wildcard/);
    expect(refusal(devEnv({ NODE_ENV: 'test', CORS_ORIGINS: '*' }))).toMatch(/wildcard/);
  });

  it('refuses origins with a path and non-http schemes', () => {
    expect(refusal(prodEnv({ PUBLIC_ORIGIN: 'https://app.example.com/console' }))).toMatch(/no path/);
    expect(refusal(prodEnv({ CORS_ORIGINS: 'ftp://files.example.com' }))).toMatch(/http\(s\)/);
    expect(refusal(prodEnv({ CORS_ORIGINS: 'not a url' }))).toMatch(/invalid origin/);
  });

  it('refuses TRUSTED_PROXIES entries that are not IPs or CIDRs', () => {
    expect(refusal(prodEnv({ TRUSTED_PROXIES: '10.0.0.1,proxy.internal' }))).toMatch(/proxy\.internal/);
    expect(refusal(prodEnv({ TRUSTED_PROXIES: '10.0.0.0/33' }))).toMatch(/10\.0\.0\.0\/33/);
    expect(loadConfig(prodEnv({ TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1 ,::1' })).trustedProxies).toEqual(['10.0.0.0/8', '127.0.0.1', '::1']);
  });

  it('refuses out-of-range numbers and unknown environments', () => {
    expect(refusal(prodEnv({ SESSION_IDLE_MINUTES: '0' }))).toMatch(/SESSION_IDLE_MINUTES/);
    expect(refusal(prodEnv({ PORT: '70000' }))).toMatch(/PORT/);
    expect(refusal(prodEnv({ NODE_ENV: 'staging' }))).toMatch(/NODE_ENV/);
  });

  it('rotates data keys every 90 days with a 30-day rollback window unless told otherwise; 0 turns the schedule off', () => {
    expect(loadConfig(prodEnv()).dataKeys).toEqual({ rotationDays: 90, rollbackDays: 30, orgDeletionGraceDays: 30 });
    expect(loadConfig(prodEnv({ PALISADE_DATA_KEY_ROTATION_DAYS: '0', PALISADE_DATA_KEY_ROLLBACK_DAYS: '7', PALISADE_ORG_DELETION_GRACE_DAYS: '3' })).dataKeys)
      .toEqual({ rotationDays: 0, rollbackDays: 7, orgDeletionGraceDays: 3 });
    expect(refusal(prodEnv({ PALISADE_DATA_KEY_ROLLBACK_DAYS: '0' }))).toMatch(/PALISADE_DATA_KEY_ROLLBACK_DAYS/);
    expect(refusal(prodEnv({ PALISADE_DATA_KEY_ROTATION_DAYS: '-1' }))).toMatch(/PALISADE_DATA_KEY_ROTATION_DAYS/);
  });

  // new-user trial
  it('reports every refusal at once, one line each, instead of one per start', () => {
    const env = prodEnv({
      PUBLIC_ORIGIN: 'http://app.example.com', PALISADE_KEKS: undefined, PALISADE_SESSION_SECRET: undefined,
      TRUSTED_PROXIES: '10.0.0.0/8,not-an-ip', PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true', METRICS_PORT: '9100', METRICS_HOST: '0.0.0.0',
    });
    let err: unknown = null;
    try {
      loadConfig(env);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const problems = (err as ConfigError).problems;
    expect(problems).toEqual([
      'production needs an https PUBLIC_ORIGIN',
      'TRUSTED_PROXIES entry is not an IP or CIDR: not-an-ip',
      'production needs PALISADE_KEKS (generated development keys are refused)',
      'production needs PALISADE_SESSION_SECRET',
      'PALISADE_WEBHOOKS_ALLOW_LOOPBACK is a development opt-in: production refuses it',
      expect.stringMatching(/^METRICS_HOST 0\.0\.0\.0 is reachable from other hosts/),
    ]);
    expect((err as Error).message.split('\n')).toEqual([`${problems.length} problems:`, ...problems.map((p) => ` - ${p}`)]);
    // A lone refusal still reads as itself.
    expect(refusal(prodEnv({ PALISADE_KEKS: undefined }))).toBe('production needs PALISADE_KEKS (generated development keys are refused)');
  });
});

describe('PALISADE_KEKS entries', () => {
  const key = (fill: number, bytes = 32) => Buffer.alloc(bytes, fill).toString('base64');

  it.each([
    ['no separator', key(1)],
    ['empty id', `:${key(1)}`],
    ['id with a space', `bad id:${key(1)}`],
    ['id longer than 32', `${'a'.repeat(33)}:${key(1)}`],
    ['16-byte key', `k1:${key(1, 16)}`],
    ['33-byte key', `k1:${key(1, 33)}`],
    ['empty key', 'k1:'],
    ['one good, one bad', `k1:${key(1)},k2:${key(2, 31)}`],
    ['only separators', ' , ,'],
    ['duplicate id', `k1:${key(1)},k1:${key(2)}`],
  ])('refuses %s', (_label, spec) => {
    expect(refusal(prodEnv({ PALISADE_KEKS: spec }))).toMatch(/PALISADE_KEKS/);
  });

  it('keeps the order: the first entry is the active key', () => {
    const c = loadConfig(prodEnv({ PALISADE_KEKS: `new:${key(2)}, old:${key(1)}` }));
    expect(c.keks.map((k) => k.id)).toEqual(['new', 'old']);
    expect(c.keks[0]?.key.equals(Buffer.alloc(32, 2))).toBe(true);
  });
});

describe('session cookie settings', () => {
  it('development on plain-http loopback drops __Host- and Secure', () => {
    for (const origin of ['http://127.0.0.1:3000', 'http://localhost:8080', 'http://[::1]:3000']) {
      const c = loadConfig(devEnv({ PUBLIC_ORIGIN: origin }));
      expect(c.insecureLocalhostCookies).toBe(true);
      expect(cookieSettings(c)).toEqual({ name: 'palisade_session', secure: false });
    }
  });

  it('development on loopback can opt back into secure cookies', () => {
    const c = loadConfig(devEnv({ PALISADE_INSECURE_LOCALHOST_COOKIES: 'false' }));
    expect(cookieSettings(c)).toEqual({ name: '__Host-palisade_session', secure: true });
  });

  it('development on https or a non-loopback host keeps __Host- and Secure', () => {
    expect(cookieSettings(loadConfig(devEnv({ PUBLIC_ORIGIN: 'https://dev.example.com' })))).toEqual({ name: '__Host-palisade_session', secure: true });
    expect(cookieSettings(loadConfig(devEnv({ PUBLIC_ORIGIN: 'http://dev.example.com' })))).toEqual({ name: '__Host-palisade_session', secure: true });
  });

  it('refuses the insecure opt-in for a non-loopback origin, even in development', () => {
    expect(refusal(devEnv({ PUBLIC_ORIGIN: 'http://dev.example.com', PALISADE_INSECURE_LOCALHOST_COOKIES: 'true' }))).toMatch(/loopback/);
    expect(refusal(devEnv({ PUBLIC_ORIGIN: 'https://localhost:3000', PALISADE_INSECURE_LOCALHOST_COOKIES: 'true' }))).toMatch(/loopback/);
  });

  it('the test harness config (https origin) gets production-like cookies', () => {
    const c = loadConfig(devEnv({ NODE_ENV: undefined, PALISADE_ENV: 'test', PUBLIC_ORIGIN: 'https://palisade.test' }));
    expect(c.env).toBe('test');
    expect(cookieSettings(c)).toEqual({ name: '__Host-palisade_session', secure: true });
  });
});

describe('development conveniences', () => {
  it('allows wildcard CORS and adds the loopback aliases to the allowed origins', () => {
    const c = loadConfig(devEnv({ CORS_ORIGINS: '*' }));
    expect(c.corsOrigins).toBe('*');
    expect([...c.allowedOrigins].sort()).toEqual(['http://127.0.0.1:3000', 'http://[::1]:3000', 'http://localhost:3000']);
  });

  it('normalizes listed CORS origins and allows them for CSRF too', () => {
    const c = loadConfig(prodEnv({ CORS_ORIGINS: 'https://Console.Example.com/, https://b.example.com:8443' }));
    expect(c.corsOrigins).toEqual(['https://console.example.com', 'https://b.example.com:8443']);
    expect(c.allowedOrigins).toEqual(['https://app.example.com', 'https://console.example.com', 'https://b.example.com:8443']);
  });

  it('generates development keys once, in the state dir, and reuses them', () => {
    const dir = join(stateDir, 'generated');
    const env = devEnv({ PALISADE_KEKS: undefined, PALISADE_SESSION_SECRET: undefined, PALISADE_STATE_DIR: dir });
    const a = loadConfig(env);
    const b = loadConfig(env);
    expect(a.generatedDevSecrets).toBe(true);
    expect(a.keks[0]?.id).toBe('dev');
    expect(a.keks[0]?.key.length).toBe(32);
    expect(a.sessionSecret.length).toBe(32);
    expect(b.keks[0]?.key.equals(a.keks[0]?.key ?? Buffer.alloc(0))).toBe(true);
    expect(b.sessionSecret.equals(a.sessionSecret)).toBe(true);
    const stored = JSON.parse(readFileSync(join(dir, 'dev-secrets.json'), 'utf8')) as { kek: string };
    expect(Buffer.from(stored.kek, 'base64').equals(a.keks[0]?.key ?? Buffer.alloc(0))).toBe(true);
  });
});

describe('the metrics listener', () => {
  const TOKEN = 'metrics-token-0123456789abcdef0123456789abcdef';

  // review R4 finding 8
  // In full: is off unless METRICS_PORT is set, in production and in development: the API listener
  // never serves /metrics
  it('is off unless METRICS_PORT is set: the API listener never serves /metrics', () => {
    expect(loadConfig(prodEnv()).metrics).toBeNull();
    expect(loadConfig(devEnv()).metrics).toBeNull();
  });

  it('binds to loopback by default, where no token is needed', () => {
    expect(loadConfig(prodEnv({ METRICS_PORT: '9464' })).metrics).toEqual({ host: '127.0.0.1', port: 9464, token: null });
    expect(loadConfig(prodEnv({ METRICS_PORT: '9464', METRICS_HOST: '::1' })).metrics?.host).toBe('::1');
  });

  it('refuses a listener other hosts can reach without a token, in production and in development', () => {
    for (const env of [prodEnv, devEnv]) {
      const why = refusal(env({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0' }));
      expect(why).toMatch(/PALISADE_METRICS_TOKEN/);
    }
    expect(loadConfig(prodEnv({ METRICS_PORT: '9464', METRICS_HOST: '0.0.0.0', PALISADE_METRICS_TOKEN: TOKEN })).metrics).toEqual({
      host: '0.0.0.0', port: 9464, token: TOKEN,
    });
  });

  it('refuses a short or unprintable token without echoing it', () => {
    for (const bad of ['short-token-1234', `${'x'.repeat(40)} with space`, `${'y'.repeat(40)}\u00e9`]) {
      const why = refusal(prodEnv({ METRICS_PORT: '9464', PALISADE_METRICS_TOKEN: bad }));
      expect(why).toMatch(/PALISADE_METRICS_TOKEN must be 32/);
      expect(why).not.toContain(bad);
    }
  });

  // In full: refuses a token or host without a port (metrics are never on the API listener), and
  // the API port itself
  it('refuses a metrics token or host without a port, and the API port itself', () => {
    expect(refusal(prodEnv({ PALISADE_METRICS_TOKEN: TOKEN }))).toMatch(/need METRICS_PORT/);
    expect(refusal(prodEnv({ METRICS_HOST: '127.0.0.1' }))).toMatch(/need METRICS_PORT/);
    expect(refusal(prodEnv({ PORT: '9464', METRICS_PORT: '9464' }))).toMatch(/METRICS_PORT must differ from PORT/);
    expect(refusal(prodEnv({ METRICS_PORT: '0' }))).toMatch(/METRICS_PORT/);
  });
});

describe('loadConfig file locations', () => {
  const dev = (env: Record<string, string>) => loadConfig({ PALISADE_ENV: 'development', PALISADE_STATE_DIR: stateDir, PALISADE_KEKS: KEK, PALISADE_SESSION_SECRET: SECRET, ...env });

  // new-user trial 2026-12-05: a second data directory shared the checkpoint file, and `audit verify` of the first failed.
  it('keeps the audit checkpoints of another PGlite directory beside it, the default one in the state directory', () => {
    expect(dev({}).auditCheckpoints.file).toBe(join(stateDir, 'audit-checkpoints.jsonl'));
    const other = join(stateDir, 'elsewhere');
    expect(dev({ PALISADE_DATA_DIR: other }).auditCheckpoints.file).toBe(`${other}.audit-checkpoints.jsonl`);
    expect(dev({ PALISADE_DATA_DIR: other, PALISADE_AUDIT_CHECKPOINT_FILE: join(stateDir, 'c.jsonl') }).auditCheckpoints.file).toBe(join(stateDir, 'c.jsonl'));
  });

  it('accepts DNS servers as ip, ip:port or [ipv6]:port and refuses anything else', () => {
    expect(dev({ DNS_SERVERS: '1.1.1.1, 127.0.0.1:5353,[::1]:53,::1' }).dnsServers).toEqual(['1.1.1.1', '127.0.0.1:5353', '[::1]:53', '::1']);
    for (const bad of ['dns.example.com', '1.1.1.1:0', '1.1.1.1:70000', '[::1]x', '300.1.1.1']) {
      expect(() => dev({ DNS_SERVERS: bad }), bad).toThrow(ConfigError);
    }
  });
});

describe('social sign-in providers', () => {
  const GH_SECRET = 'canary-config-github-secret-7d1e';

  it('configures none by default, and opens sign-up as registration does', () => {
    expect(loadConfig(prodEnv()).social).toEqual({ signUp: true, providers: [] });
    expect(loadConfig(prodEnv({ SOCIAL_SIGN_UP: 'false' })).social.signUp).toBe(false);
    expect(refusal(prodEnv({ SOCIAL_SIGN_UP: 'maybe' }))).toContain('SOCIAL_SIGN_UP');
  });

  it('builds the Google and GitHub presets from a client id and secret, and generic OIDC entries by name', () => {
    const c = loadConfig(prodEnv({
      SOCIAL_GOOGLE_CLIENT_ID: 'g-id', SOCIAL_GOOGLE_CLIENT_SECRET: 'g-secret',
      SOCIAL_GITHUB_CLIENT_ID: 'gh-id', SOCIAL_GITHUB_CLIENT_SECRET: GH_SECRET,
      SOCIAL_OIDC_PROVIDERS: 'microsoft',
      SOCIAL_OIDC_MICROSOFT_ISSUER: 'https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0',
      SOCIAL_OIDC_MICROSOFT_CLIENT_ID: 'ms-id', SOCIAL_OIDC_MICROSOFT_CLIENT_SECRET: 'ms-secret', SOCIAL_OIDC_MICROSOFT_NAME: 'Microsoft',
    }));
    expect(c.social.providers).toEqual([
      { id: 'google', name: 'Google', protocol: 'oidc', issuer: 'https://accounts.google.com', clientId: 'g-id', clientSecret: 'g-secret', scopes: ['openid', 'email', 'profile'] },
      {
        id: 'github', name: 'GitHub', protocol: 'github', authorizeUrl: 'https://github.com/login/oauth/authorize',
        tokenUrl: 'https://github.com/login/oauth/access_token', apiUrl: 'https://api.github.com', clientId: 'gh-id', clientSecret: GH_SECRET,
        scopes: ['read:user', 'user:email'],
      },
      {
        id: 'microsoft', name: 'Microsoft', protocol: 'oidc', issuer: 'https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0',
        clientId: 'ms-id', clientSecret: 'ms-secret', scopes: ['openid', 'email', 'profile'],
      },
    ]);
  });

  it('points a preset at plain-http loopback only with the development loopback opt-in, never in production', () => {
    const local = { SOCIAL_GITHUB_CLIENT_ID: 'gh-id', SOCIAL_GITHUB_CLIENT_SECRET: GH_SECRET, SOCIAL_GITHUB_TOKEN_URL: 'http://127.0.0.1:9999/login/oauth/access_token' };
    expect(refusal(devEnv(local))).toContain('SOCIAL_GITHUB_TOKEN_URL must use https');
    const dev = loadConfig(devEnv({ ...local, PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' }));
    expect(dev.social.providers[0]).toMatchObject({ tokenUrl: 'http://127.0.0.1:9999/login/oauth/access_token' });
    const prod = refusal(prodEnv({ ...local, PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' }));
    expect(prod).toContain('SOCIAL_GITHUB_TOKEN_URL must use https');
    // Plain http to another host is refused even with the opt-in.
    expect(refusal(devEnv({ SOCIAL_GOOGLE_CLIENT_ID: 'g', SOCIAL_GOOGLE_CLIENT_SECRET: 's', SOCIAL_GOOGLE_ISSUER: 'http://idp.example', PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' })))
      .toContain('SOCIAL_GOOGLE_ISSUER must use https');
  });

  it('refuses half a client, a bad provider id or a duplicate, and a generic entry without its issuer, never quoting a secret', () => {
    const message = refusal(prodEnv({
      SOCIAL_GITHUB_CLIENT_SECRET: GH_SECRET,
      SOCIAL_GOOGLE_CLIENT_ID: 'g-id', SOCIAL_GOOGLE_CLIENT_SECRET: `bad\u0001${GH_SECRET}`,
      SOCIAL_OIDC_PROVIDERS: 'Bad_Id,github,okta',
      SOCIAL_OIDC_OKTA_CLIENT_ID: 'o', SOCIAL_OIDC_OKTA_CLIENT_SECRET: 's',
    }));
    expect(message).toContain('SOCIAL_GITHUB_CLIENT_ID and SOCIAL_GITHUB_CLIENT_SECRET go together');
    expect(message).toContain('SOCIAL_GOOGLE_CLIENT_SECRET must be printable ASCII');
    expect(message).toContain('"Bad_Id" is not a provider id');
    expect(message).toContain('github is named twice');
    expect(message).toContain('SOCIAL_OIDC_OKTA_ISSUER');
    expect(message).not.toContain(GH_SECRET);
  });

  it('reads a client secret from a file (SOCIAL_*_CLIENT_SECRET_FILE)', () => {
    const file = join(stateDir, 'github-secret');
    writeFileSync(file, `${GH_SECRET}\n`);
    const c = loadConfig(prodEnv({ SOCIAL_GITHUB_CLIENT_ID: 'gh-id', SOCIAL_GITHUB_CLIENT_SECRET_FILE: file }));
    expect(c.social.providers[0]?.clientSecret).toBe(GH_SECRET);
    expect(refusal(prodEnv({ SOCIAL_GITHUB_CLIENT_ID: 'gh-id', SOCIAL_GITHUB_CLIENT_SECRET_FILE: join(stateDir, 'missing') }))).toContain('SOCIAL_GITHUB_CLIENT_SECRET_FILE cannot be read');
  });
});

describe('mail (SMTP_URL, MAIL_FROM)', () => {
  const PASSWORD = 'smtp-pw-9c41e0d7';

  it('has no transport without SMTP_URL: the development outbox keeps the mail', () => {
    const c = loadConfig(devEnv());
    expect(c.mail).toEqual({ smtp: null, from: 'Palisade <no-reply@127.0.0.1>' });
    expect(loadConfig(prodEnv()).mail.smtp).toBeNull();
  });

  it('reads host, port, credentials and TLS mode from the URL, percent-decoded', () => {
    const c = loadConfig(prodEnv({ SMTP_URL: `smtps://mailer%40app:${encodeURIComponent('p@ss:/w')}@smtp.example.com`, MAIL_FROM: 'Acme <security@example.com>' }));
    expect(c.mail).toEqual({
      from: 'Acme <security@example.com>',
      smtp: { host: 'smtp.example.com', port: 465, secure: true, requireTLS: false, user: 'mailer@app', password: 'p@ss:/w', timeoutMs: 5000 },
    });
    const starttls = loadConfig(prodEnv({ SMTP_URL: 'smtp://smtp.example.com:2587?requireTLS=true', SMTP_TIMEOUT_MS: '2500' }));
    expect(starttls.mail.smtp).toEqual({ host: 'smtp.example.com', port: 2587, secure: false, requireTLS: true, user: null, password: null, timeoutMs: 2500 });
    expect(starttls.mail.from).toBe('Palisade <no-reply@app.example.com>');
  });

  it('refuses a plain smtp:// URL in production, without quoting its password; development accepts it', () => {
    const url = `smtp://mailer:${PASSWORD}@smtp.example.com:587`;
    const message = refusal(prodEnv({ SMTP_URL: url }));
    expect(message).toContain('production refuses a plain SMTP_URL: use smtps:// (TLS) or smtp://…?requireTLS=true (STARTTLS required)');
    expect(message).not.toContain(PASSWORD);
    expect(refusal(prodEnv({ SMTP_URL: `${url}?requireTLS=false` }))).toContain('production refuses a plain SMTP_URL');
    expect(loadConfig(devEnv({ SMTP_URL: 'smtp://127.0.0.1:2525' })).mail.smtp).toMatchObject({ secure: false, requireTLS: false, port: 2525 });
  });

  it('refuses other schemes, paths, unknown options, a bad sender and a bad timeout, never quoting the URL', () => {
    const problems = (env: Record<string, string>) => refusal(devEnv(env));
    expect(problems({ SMTP_URL: `http://u:${PASSWORD}@smtp.example.com` })).toBe('SMTP_URL must start with smtp:// or smtps://');
    expect(problems({ SMTP_URL: `smtps://u:${PASSWORD}@smtp.example.com/x` })).toContain('with no path or fragment');
    const option = problems({ SMTP_URL: `smtps://u:${PASSWORD}@smtp.example.com?rejectUnauthorized=false` });
    expect(option).toBe('SMTP_URL accepts one option: ?requireTLS=true');
    expect(problems({ SMTP_URL: `not a url ${PASSWORD}` })).not.toContain(PASSWORD);
    expect(problems({ MAIL_FROM: 'a@b.test\r\nBcc: x@evil.test' })).toContain('MAIL_FROM must be an address');
    expect(problems({ SMTP_TIMEOUT_MS: '5' })).toContain('SMTP_TIMEOUT_MS must be an integer from 100 to 60000');
  });

  it('reads the URL from a file (SMTP_URL_FILE), never both', () => {
    const file = join(stateDir, 'smtp-url');
    writeFileSync(file, `smtps://mailer:${PASSWORD}@smtp.example.com\n`);
    expect(loadConfig(prodEnv({ SMTP_URL_FILE: file })).mail.smtp).toMatchObject({ host: 'smtp.example.com', password: PASSWORD });
    expect(refusal(prodEnv({ SMTP_URL_FILE: join(stateDir, 'missing') }))).toBe(`SMTP_URL_FILE cannot be read: ${join(stateDir, 'missing')} (no such file)`);
    expect(refusal(prodEnv({ SMTP_URL_FILE: file, SMTP_URL: 'smtps://smtp.example.com' }))).toBe('SMTP_URL and SMTP_URL_FILE are both set: keep one');
  });
});

describe('uploads (PALISADE_CLAMD, PALISADE_FILE_STORE, PALISADE_UPLOAD_PLANS)', () => {
  it('has no scanner by default, keeps files under the state directory, and starts every org on the free plan', () => {
    const c = loadConfig(prodEnv());
    expect(c.uploads.clamd).toBeNull();
    expect(c.uploads.unscanned).toBe(false);
    expect(c.uploads.store).toEqual({ kind: 'disk', dir: join(stateDir, 'files') });
    expect(c.uploads.plans.free).toEqual({ fileBytes: 25 * 1024 ** 2, quotaBytes: 1024 ** 3 });
  });

  it('reads clamd over TCP or its socket, and refuses anything else', () => {
    expect(loadConfig(prodEnv({ PALISADE_CLAMD: 'tcp://clamd.internal:3310' })).uploads.clamd).toEqual({ address: { kind: 'tcp', host: 'clamd.internal', port: 3310 }, timeoutMs: 10_000 });
    expect(loadConfig(prodEnv({ PALISADE_CLAMD: 'unix:/run/clamav/clamd.ctl', PALISADE_CLAMD_TIMEOUT_MS: '2000' })).uploads.clamd)
      .toEqual({ address: { kind: 'unix', path: '/run/clamav/clamd.ctl' }, timeoutMs: 2000 });
    expect(refusal(prodEnv({ PALISADE_CLAMD: 'http://clamd:3310' }))).toMatch(/PALISADE_CLAMD must be/);
    expect(refusal(prodEnv({ PALISADE_CLAMD_TIMEOUT_MS: '5' }))).toMatch(/PALISADE_CLAMD_TIMEOUT_MS/);
  });

  it('lets only development and test keep files unscanned; production refuses the opt-out', () => {
    expect(loadConfig(devEnv({ PALISADE_UPLOADS_UNSCANNED: 'true' })).uploads.unscanned).toBe(true);
    expect(refusal(prodEnv({ PALISADE_UPLOADS_UNSCANNED: 'true' }))).toMatch(/PALISADE_UPLOADS_UNSCANNED is a development opt-out/);
    expect(refusal(devEnv({ PALISADE_UPLOADS_UNSCANNED: 'yes' }))).toMatch(/true or false/);
  });

  it('parses plans in binary units and refuses a plan list without free, or a file limit above its quota', () => {
    expect(loadConfig(prodEnv({ PALISADE_UPLOAD_PLANS: 'free=512K/10M,pro=1G/2T' })).uploads.plans).toEqual({
      free: { fileBytes: 512 * 1024, quotaBytes: 10 * 1024 ** 2 }, pro: { fileBytes: 1024 ** 3, quotaBytes: 2 * 1024 ** 4 },
    });
    expect(refusal(prodEnv({ PALISADE_UPLOAD_PLANS: 'pro=1G/2T' }))).toMatch(/must define the free plan/);
    expect(refusal(prodEnv({ PALISADE_UPLOAD_PLANS: 'free=2G/1G' }))).toMatch(/larger than its quota/);
    expect(refusal(prodEnv({ PALISADE_UPLOAD_PLANS: 'free=lots' }))).toMatch(/is not plan=/);
  });

  it('needs a bucket for S3, and both halves of a key or neither; the secret never appears in a refusal', () => {
    const s3 = loadConfig(prodEnv({ PALISADE_FILE_STORE: 's3', PALISADE_S3_BUCKET: 'palisade-files', PALISADE_S3_ENDPOINT: 'http://127.0.0.1:4568', PALISADE_S3_FORCE_PATH_STYLE: 'true' }));
    expect(s3.uploads.store).toMatchObject({ kind: 's3', bucket: 'palisade-files', endpoint: 'http://127.0.0.1:4568', forcePathStyle: true, credentials: null });
    expect(refusal(prodEnv({ PALISADE_FILE_STORE: 's3' }))).toMatch(/PALISADE_S3_BUCKET/);
    const why = refusal(prodEnv({ PALISADE_FILE_STORE: 's3', PALISADE_S3_BUCKET: 'b-1', PALISADE_S3_SECRET_ACCESS_KEY: 'CANARY-s3-secret' }));
    expect(why).toMatch(/go together/);
    expect(why).not.toContain('CANARY-s3-secret');
  });
});
