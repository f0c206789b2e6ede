import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './index.js';
import { SECRET_SETTINGS } from './setting.js';

const dir = mkdtempSync(join(tmpdir(), 'palisade-file-settings-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const KEK_A = Buffer.alloc(32, 7).toString('base64');
const KEK_B = Buffer.alloc(32, 8).toString('base64');
const SECRET = Buffer.alloc(32, 9).toString('base64');
let n = 0;
/** A file holding `content`, as a mounted secret would. */
function secretFile(content: string): string {
  const f = join(dir, `secret-${n++}`);
  writeFileSync(f, content, { mode: 0o600 });
  return f;
}

const prodEnv = (overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> => ({
  NODE_ENV: 'production',
  PUBLIC_ORIGIN: 'https://app.example.com',
  PALISADE_KEKS: `k1:${KEK_A}`,
  PALISADE_SESSION_SECRET: SECRET,
  PALISADE_STATE_DIR: dir,
  ...overrides,
});

function problems(env: Record<string, string | undefined>): readonly string[] {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('loadConfig accepted the configuration');
}

describe('NAME_FILE for every secret setting', () => {
  it('reads each secret from its file, trailing newline trimmed', () => {
    const c = loadConfig(prodEnv({
      PALISADE_KEKS: undefined,
      PALISADE_KEKS_FILE: secretFile(`k2:${KEK_B},k1:${KEK_A}\n`),
      PALISADE_SESSION_SECRET: undefined,
      PALISADE_SESSION_SECRET_FILE: secretFile(`${SECRET}\r\n`),
      DATABASE_URL_FILE: secretFile('postgres://owner:s3cret@db.internal:5432/palisade\n'),
      PALISADE_DB_RUNTIME_PASSWORD_FILE: secretFile('runtime-pw\n'),
      REDIS_URL_FILE: secretFile('rediss://:pw@cache.internal:6380\n'),
      METRICS_PORT: '9100',
      PALISADE_METRICS_TOKEN_FILE: secretFile(`${'t'.repeat(40)}\n`),
    }));
    expect(c.keks.map((k) => k.id)).toEqual(['k2', 'k1']);
    expect(c.sessionSecret.equals(Buffer.alloc(32, 9))).toBe(true);
    expect(c.database).toMatchObject({ kind: 'postgres', ownerUrl: 'postgres://owner:s3cret@db.internal:5432/palisade', runtimePassword: 'runtime-pw' });
    expect(c.redisUrl).toBe('rediss://:pw@cache.internal:6380');
    expect(c.metrics?.token).toBe('t'.repeat(40));
  });

  it('refuses a setting given both ways, naming both and neither value', () => {
    for (const name of SECRET_SETTINGS) {
      const value = name === 'PALISADE_KEKS' ? `k1:${KEK_A}` : 'canary-value-never-shown';
      const got = problems(prodEnv({ [name]: value, [`${name}_FILE`]: secretFile('canary-file-content') }));
      expect(got).toContain(`${name} and ${name}_FILE are both set: keep one`);
      expect(got.join('\n')).not.toMatch(/canary/);
    }
  });

  it('refuses a file that does not exist or cannot be read, naming the setting, never the content', () => {
    for (const name of SECRET_SETTINGS) {
      const missing = join(dir, `missing-${name}`);
      expect(problems(prodEnv({ [name]: undefined, [`${name}_FILE`]: missing }))).toContain(`${name}_FILE cannot be read: ${missing} (no such file)`);
    }
    // A directory where a file was expected (a Kubernetes secret mounted one level too high).
    expect(problems(prodEnv({ PALISADE_KEKS: undefined, PALISADE_KEKS_FILE: dir }))).toContain(`PALISADE_KEKS_FILE: ${dir} is not a regular file`);
    // A device (or a FIFO) would hang the start or fill its memory: refused before it is read.
    expect(problems(prodEnv({ PALISADE_SESSION_SECRET: undefined, PALISADE_SESSION_SECRET_FILE: '/dev/zero' }))).toContain('PALISADE_SESSION_SECRET_FILE: /dev/zero is not a regular file');
    const huge = secretFile('x'.repeat(64 * 1024 + 1));
    expect(problems(prodEnv({ PALISADE_SESSION_SECRET: undefined, PALISADE_SESSION_SECRET_FILE: huge }))).toContain(`PALISADE_SESSION_SECRET_FILE: ${huge} is larger than 64 KiB, too large for a secret`);
    const empty = secretFile('\n');
    expect(problems(prodEnv({ PALISADE_SESSION_SECRET: undefined, PALISADE_SESSION_SECRET_FILE: empty }))).toContain(`PALISADE_SESSION_SECRET_FILE: ${empty} is empty`);
    expect(problems(prodEnv({ PALISADE_KEKS: undefined, PALISADE_KEKS_FILE: '' }))).toContain('PALISADE_KEKS_FILE is empty: name the file that holds PALISADE_KEKS');
  });

  it('quotes no part of a malformed secret read from a file', () => {
    const got = problems(prodEnv({ PALISADE_KEKS: undefined, PALISADE_KEKS_FILE: secretFile('k1:canaryNotBase64!!\n') }));
    expect(got.join('\n')).toMatch(/PALISADE_KEKS/);
    expect(got.join('\n')).not.toMatch(/canary/);
  });

  it('leaves *_FILE settings that are not secrets alone (the audit checkpoint file is a path)', () => {
    const file = join(dir, 'checkpoints.jsonl');
    expect(loadConfig(prodEnv({ PALISADE_AUDIT_CHECKPOINT_FILE: file })).auditCheckpoints.file).toBe(file);
  });
});

describe('PALISADE_KEK_PROVIDER', () => {
  it('env by default: PALISADE_KEKS', () => {
    expect(loadConfig(prodEnv()).kekProvider).toEqual({ kind: 'env' });
  });

  it('file: one file per KEK in a directory, the active one named, dot entries skipped (Kubernetes ..data)', () => {
    const keks = join(dir, 'keks');
    mkdirSync(keks);
    writeFileSync(join(keks, 'k1'), `${KEK_A}\n`);
    writeFileSync(join(keks, 'k2'), KEK_B);
    mkdirSync(join(keks, '..2026_12_06'));
    symlinkSync('..2026_12_06', join(keks, '..data'));
    const env = prodEnv({ PALISADE_KEKS: undefined, PALISADE_KEK_PROVIDER: 'file', PALISADE_KEK_DIR: keks });
    expect(problems(env)).toEqual(['PALISADE_KEK_DIR holds 2 KEKs: name the active one with PALISADE_KEK_ACTIVE']);
    const c = loadConfig({ ...env, PALISADE_KEK_ACTIVE: 'k2' });
    expect(c.kekProvider).toEqual({ kind: 'file', dir: keks });
    expect(c.keks.map((k) => k.id)).toEqual(['k2', 'k1']);
    expect(c.keks[1]?.key.equals(Buffer.alloc(32, 7))).toBe(true);
    expect(problems({ ...env, PALISADE_KEK_ACTIVE: 'k9' })).toEqual(['PALISADE_KEK_ACTIVE names k9, which PALISADE_KEK_DIR does not hold']);
    writeFileSync(join(keks, 'k3'), 'canary-short');
    expect(problems({ ...env, PALISADE_KEK_ACTIVE: 'k2' })).toEqual(['PALISADE_KEK_DIR: KEK file k3 must hold 32 bytes in base64']);
    rmSync(join(keks, 'k3'));
    expect(problems({ ...env, PALISADE_KEK_DIR: join(dir, 'nope') })[0]).toMatch(/^PALISADE_KEK_DIR cannot be read: .*nope \(ENOENT\)$/);
    expect(problems({ ...env, PALISADE_KEK_ACTIVE: 'k2', PALISADE_KEKS: `k1:${KEK_A}` })).toEqual(['PALISADE_KEKS is a setting of another PALISADE_KEK_PROVIDER than file: remove it']);
  });

  it('pkcs11: token, PIN (or its file) and key labels, the first active; each missing piece named', () => {
    const pinFile = secretFile('1234\n');
    const c = loadConfig(prodEnv({
      PALISADE_KEKS: undefined, PALISADE_KEK_PROVIDER: 'pkcs11', PALISADE_PKCS11_TOKEN: 'palisade',
      PALISADE_PKCS11_PIN_FILE: pinFile, PALISADE_PKCS11_KEYS: 'kek-2026, kek-2025',
    }));
    expect(c.kekProvider).toEqual({ kind: 'pkcs11', module: '/usr/lib/softhsm/libsofthsm2.so', token: 'palisade', pin: '1234', keyLabels: ['kek-2026', 'kek-2025'] });
    expect(c.keks).toEqual([]);
    expect(problems(prodEnv({ PALISADE_KEKS: undefined, PALISADE_KEK_PROVIDER: 'pkcs11' }))).toEqual([
      'PALISADE_KEK_PROVIDER=pkcs11 needs PALISADE_PKCS11_TOKEN (the token label)',
      'PALISADE_KEK_PROVIDER=pkcs11 needs PALISADE_PKCS11_PIN or PALISADE_PKCS11_PIN_FILE (the user PIN)',
      'PALISADE_KEK_PROVIDER=pkcs11 needs PALISADE_PKCS11_KEYS (key labels, the active one first)',
    ]);
    const got = problems(prodEnv({ PALISADE_KEK_PROVIDER: 'pkcs11', PALISADE_PKCS11_TOKEN: 't', PALISADE_PKCS11_PIN: '1', PALISADE_PKCS11_KEYS: 'a,bad label,a' }));
    expect(got).toContain('PALISADE_PKCS11_KEYS: "bad label" is not a KEK id (1-32 of A-Z a-z 0-9 _ -)');
    expect(got).toContain('PALISADE_PKCS11_KEYS lists a label twice');
    expect(got).toContain('PALISADE_KEKS is set but PALISADE_KEK_PROVIDER=pkcs11 keeps the KEKs in the token: remove PALISADE_KEKS');
    expect(problems(prodEnv({ PALISADE_KEK_PROVIDER: 'vault' }))).toEqual(['PALISADE_KEK_PROVIDER must be one of env, file, pkcs11']);
  });
});
