import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as Pkcs11Js from 'pkcs11js';
import { DEFAULT_PKCS11_MODULE } from '../../src/crypto/index.js';

/**
 * A real SoftHSM2 token for the PKCS#11 provider's tests: its own configuration and token
 * directory in a temporary folder, initialised with softhsm2-util, keys made through PKCS#11.
 * SoftHSM reads SOFTHSM2_CONF when the library initialises, once per process: a test file makes
 * every token it needs before it opens any.
 */

export const SOFTHSM_MODULE = process.env.PALISADE_PKCS11_MODULE ?? DEFAULT_PKCS11_MODULE;

/**
 * Why the PKCS#11 tests cannot run here, or null. CI installs softhsm2 and sets
 * PALISADE_REQUIRE_SOFTHSM (.ci/run): there a missing module fails the suite instead.
 */
export function softhsmMissing(): string | null {
  const why = softhsmAbsence();
  if (why && process.env.PALISADE_REQUIRE_SOFTHSM === '1') throw new Error(`PALISADE_REQUIRE_SOFTHSM=1 but ${why}`);
  return why;
}

function softhsmAbsence(): string | null {
  if (!existsSync(SOFTHSM_MODULE)) return `SoftHSM2 module ${SOFTHSM_MODULE} is absent (apt-get install softhsm2)`;
  try {
    execFileSync('softhsm2-util', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'softhsm2-util is not on PATH (apt-get install softhsm2)';
  }
  return null;
}

export interface SoftHsm {
  dir: string;
  /** The environment a child process (the CLI) needs to see the same tokens. */
  env: Record<string, string>;
  close(): void;
}

/** A SoftHSM2 configuration of its own (process.env.SOFTHSM2_CONF points at it from now on). */
export function startSoftHsm(): SoftHsm {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-softhsm-'));
  mkdirSync(join(dir, 'tokens'));
  const conf = join(dir, 'softhsm2.conf');
  writeFileSync(conf, `directories.tokendir = ${join(dir, 'tokens')}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n`);
  process.env.SOFTHSM2_CONF = conf;
  return { dir, env: { SOFTHSM2_CONF: conf }, close: () => rmSync(dir, { recursive: true, force: true }) };
}

export function initToken(label: string, pin: string): void {
  execFileSync('softhsm2-util', ['--init-token', '--free', '--label', label, '--pin', pin, '--so-pin', `so-${pin}`], {
    stdio: 'ignore', env: { ...process.env },
  });
}

const requireCjs = createRequire(import.meta.url);

/** A logged-in session on a token, for making keys the way an HSM administrator would. */
export function adminSession(token: string, pin: string): { p: typeof Pkcs11Js; m: Pkcs11Js.PKCS11; session: Buffer; close(): void } {
  const p = requireCjs('pkcs11js') as typeof Pkcs11Js;
  const m = new p.PKCS11();
  m.load(SOFTHSM_MODULE);
  try {
    m.C_Initialize();
  } catch (err) {
    if ((err as { code?: number }).code !== p.CKR_CRYPTOKI_ALREADY_INITIALIZED) throw err;
  }
  const slot = m.C_GetSlotList(true).find((s) => m.C_GetTokenInfo(s).label.trim() === token);
  if (!slot) throw new Error(`no token ${token}`);
  const session = m.C_OpenSession(slot, p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
  try {
    m.C_Login(session, p.CKU_USER, pin);
  } catch (err) {
    if ((err as { code?: number }).code !== p.CKR_USER_ALREADY_LOGGED_IN) throw err;
  }
  // Closing the last session logs the application out: a later provider must log in itself.
  return { p, m, session, close: () => m.C_CloseSession(session) };
}

export interface KekOptions {
  /** Import these bytes (a KEK moved from PALISADE_KEKS) instead of generating the key in the token. */
  value?: Buffer;
  extractable?: boolean;
  /** Bytes of the generated AES key (32 unless a test wants a weaker one refused). */
  valueLen?: number;
}

/**
 * A KEK as operations.md tells an operator to make one: a non-extractable AES-256 key labelled
 * `label`, and its MAC companion `label.mac`, a non-extractable generic secret. For an imported
 * KEK the companion holds HKDF-Extract(zero salt, KEK), so chain MACs equal the env provider's.
 */
export function createKek(token: string, pin: string, label: string, opts: KekOptions = {}): void {
  const { p, m, session, close } = adminSession(token, pin);
  try {
    const common = [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_PRIVATE, value: true },
      { type: p.CKA_SENSITIVE, value: true },
      { type: p.CKA_EXTRACTABLE, value: opts.extractable ?? false },
    ];
    const aes = [...common, { type: p.CKA_KEY_TYPE, value: p.CKK_AES }, { type: p.CKA_LABEL, value: label },
      { type: p.CKA_ENCRYPT, value: true }, { type: p.CKA_DECRYPT, value: true }];
    const mac = [...common, { type: p.CKA_KEY_TYPE, value: p.CKK_GENERIC_SECRET }, { type: p.CKA_LABEL, value: `${label}.mac` },
      { type: p.CKA_SIGN, value: true }];
    if (opts.value) {
      m.C_CreateObject(session, [...aes, { type: p.CKA_VALUE, value: opts.value }]);
      const prk = createHmac('sha256', Buffer.alloc(32)).update(opts.value).digest();
      m.C_CreateObject(session, [...mac, { type: p.CKA_VALUE, value: prk }]);
    } else {
      m.C_GenerateKey(session, { mechanism: p.CKM_AES_KEY_GEN }, [...aes, { type: p.CKA_VALUE_LEN, value: opts.valueLen ?? 32 }]);
      m.C_GenerateKey(session, { mechanism: p.CKM_GENERIC_SECRET_KEY_GEN }, [...mac, { type: p.CKA_VALUE_LEN, value: 32 }]);
    }
  } finally {
    close();
  }
}

/** Tries to read a key's CKA_VALUE out of the token: the PKCS#11 error code, or the bytes. */
export function readKeyValue(token: string, pin: string, label: string): { code: string } | { value: Buffer } {
  const { p, m, session, close } = adminSession(token, pin);
  try {
    m.C_FindObjectsInit(session, [{ type: p.CKA_CLASS, value: p.CKO_SECRET_KEY }, { type: p.CKA_LABEL, value: label }]);
    const [handle] = m.C_FindObjects(session, 1);
    m.C_FindObjectsFinal(session);
    if (!handle) throw new Error(`no key ${label}`);
    try {
      const [attr] = m.C_GetAttributeValue(session, handle, [{ type: p.CKA_VALUE }]);
      return { value: attr?.value as Buffer };
    } catch (err) {
      return { code: /CKR_[A-Z_]+/.exec((err as Error).message)?.[0] ?? (err as Error).message };
    }
  } finally {
    close();
  }
}
