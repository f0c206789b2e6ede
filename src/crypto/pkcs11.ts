import { createHash, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Pkcs11Js from 'pkcs11js';
import { joinWrapped, SealedValueError, splitWrapped, type KekProvider } from './kek-provider.js';

/**
 * KEKs in a PKCS#11 token (an HSM, a cloud HSM's PKCS#11 library, or SoftHSM2). Each KEK is a
 * non-extractable AES-256 key found by its label; data keys are wrapped and unwrapped by
 * CKM_AES_GCM inside the token, with the same AAD and `iv.ct.tag` format as the in-process
 * provider, so a KEK imported into a token under its id keeps opening what it wrapped before.
 *
 * The audit chain needs MAC keys (Keyring.mac), and HKDF cannot run on a key whose bytes never
 * leave. Each KEK label therefore has a companion generic-secret key labelled `<label>.mac`
 * (non-extractable, CKA_SIGN only) holding HKDF's PRK; the token computes HKDF-Expand's one block,
 * HMAC-SHA256(PRK, "palisade:<purpose>" || 0x01), and only that per-purpose derived key reaches
 * the process, where the chain's HMACs run at memory speed (an HMAC per event through a token
 * would cap appends and `audit verify`). For a KEK moved from PALISADE_KEKS, the companion's
 * value is HMAC-SHA256(32 zero bytes, KEK): the derivation is then exactly the env provider's,
 * and old chains keep verifying. See docs/operations.md, "Keys".
 */

export interface Pkcs11Settings {
  module: string;
  token: string;
  pin: string;
  keyLabels: readonly string[];
}

/** Opening the token failed: a startup refusal, one line, never quoting the PIN. */
export class KeyProviderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyProviderError';
  }
}

type Lib = typeof Pkcs11Js;
type Handle = Buffer;

const requireCjs = createRequire(import.meta.url);
let lib: Lib | null = null;
/** pkcs11js is a native addon: loaded only by a process configured for PKCS#11. */
function pkcs11js(): Lib {
  if (lib) return lib;
  try {
    lib = requireCjs('pkcs11js') as Lib;
  } catch {
    // An optional dependency: its native build needs a C++ toolchain at install time.
    throw new KeyProviderError('PALISADE_KEK_PROVIDER=pkcs11 needs the pkcs11js package, which is not installed or did not build (npm install pkcs11js, with g++, make and python3)');
  }
  return lib;
}

/**
 * A PKCS#11 library is initialised once per process (a second C_Initialize is an error), whoever
 * opens it: the server, the migration step and an operator command may each hold a session.
 */
const modules = new Map<string, Pkcs11Js.PKCS11>();
/**
 * Login is per application, not per session: while one session is logged in, the token answers
 * a second C_Login with CKR_USER_ALREADY_LOGGED_IN without checking its PIN. The digest of the
 * PIN that did log in is kept so that a different PIN is still refused.
 */
const loggedIn = new Map<string, string>();
const pinDigest = (pin: string): string => createHash('sha256').update(pin).digest('hex');

function loadModule(path: string): Pkcs11Js.PKCS11 {
  const hit = modules.get(path);
  if (hit) return hit;
  const p11 = pkcs11js();
  const m = new p11.PKCS11();
  try {
    m.load(path);
  } catch {
    throw new KeyProviderError(`PALISADE_PKCS11_MODULE ${path} cannot be loaded (is the PKCS#11 library installed, e.g. Debian softhsm2?)`);
  }
  try {
    m.C_Initialize();
  } catch (err) {
    if (!isCode(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED)) throw new KeyProviderError(`PKCS#11 module ${path} failed to initialise (${codeName(err)})`);
  }
  modules.set(path, m);
  return m;
}

function isCode(err: unknown, code: number): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === code;
}

/** The CKR_ name of a PKCS#11 error (its message is `CKR_…:code`), never anything else it carried. */
function codeName(err: unknown): string {
  const m = /CKR_[A-Z_]+/.exec(err instanceof Error ? err.message : '');
  return m ? m[0] : 'PKCS#11 error';
}

function findSlot(m: Pkcs11Js.PKCS11, token: string, module: string): Handle {
  const labels: string[] = [];
  for (const slot of m.C_GetSlotList(true)) {
    const label = m.C_GetTokenInfo(slot).label.trim();
    if (label === token) return slot;
    // SoftHSM keeps a free, uninitialised slot: no label, nothing to name.
    if (label !== '') labels.push(label);
  }
  throw new KeyProviderError(
    `PKCS#11 token "${token}" (PALISADE_PKCS11_TOKEN) is not in ${module}${labels.length > 0 ? `; tokens present: ${labels.map((l) => `"${l}"`).join(', ')}` : '; it has no initialised token'}`,
  );
}

function findKey(m: Pkcs11Js.PKCS11, session: Handle, label: string, keyType: number[], what: string, token: string, minBytes: number, maxBytes: number): Handle {
  const p = pkcs11js();
  m.C_FindObjectsInit(session, [
    { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
    { type: p.CKA_LABEL, value: label },
  ]);
  const found = m.C_FindObjects(session, 2);
  m.C_FindObjectsFinal(session);
  if (found.length === 0) throw new KeyProviderError(`PKCS#11 token "${token}" has no ${what} labelled "${label}"`);
  if (found.length > 1) throw new KeyProviderError(`PKCS#11 token "${token}" has more than one key labelled "${label}": a KEK must be unambiguous`);
  const handle = found[0] as Handle;
  const attrs = m.C_GetAttributeValue(session, handle, [
    { type: p.CKA_KEY_TYPE }, { type: p.CKA_EXTRACTABLE }, { type: p.CKA_SENSITIVE }, { type: p.CKA_VALUE_LEN },
  ]);
  const num = (v: unknown): number => (Buffer.isBuffer(v) ? v.readUIntLE(0, Math.min(v.length, 6)) : Number(v));
  const bool = (v: unknown): boolean => (Buffer.isBuffer(v) ? v[0] === 1 : v === true);
  if (!keyType.includes(num(attrs[0]?.value))) throw new KeyProviderError(`PKCS#11 key "${label}" in token "${token}" is not ${what}`);
  // 256 bits at least, as the env provider's KEKs: an AES-128 key would quietly weaken every wrap.
  const bytes = num(attrs[3]?.value);
  if (bytes < minBytes || bytes > maxBytes) {
    throw new KeyProviderError(`PKCS#11 key "${label}" in token "${token}" is not 256 bits (CKA_VALUE_LEN must be ${minBytes === maxBytes ? minBytes : `${minBytes} to ${maxBytes}`})`);
  }
  // A KEK whose bytes can be read out is a KEK in a file with extra steps: refused.
  if (bool(attrs[1]?.value) || !bool(attrs[2]?.value)) {
    throw new KeyProviderError(`PKCS#11 key "${label}" in token "${token}" can leave the token: create it with CKA_EXTRACTABLE=false and CKA_SENSITIVE=true`);
  }
  return handle;
}

export function openPkcs11Provider(s: Pkcs11Settings): KekProvider {
  const p = pkcs11js();
  const m = loadModule(s.module);
  const slot = findSlot(m, s.token, s.module);
  const session = m.C_OpenSession(slot, p.CKF_SERIAL_SESSION);
  const fail = (err: unknown): never => {
    try {
      m.C_CloseSession(session);
    } catch {
      // The refusal below is what matters.
    }
    throw err;
  };
  const tokenKey = `${s.module}\n${s.token}`;
  const refusedPin = `PALISADE_PKCS11_PIN was refused by token "${s.token}" (CKR_PIN_INCORRECT)`;
  try {
    m.C_Login(session, p.CKU_USER, s.pin);
    loggedIn.set(tokenKey, pinDigest(s.pin));
  } catch (err) {
    if (isCode(err, p.CKR_USER_ALREADY_LOGGED_IN)) {
      const known = loggedIn.get(tokenKey);
      if (known !== undefined && known !== pinDigest(s.pin)) fail(new KeyProviderError(refusedPin));
    } else {
      const code = codeName(err);
      fail(new KeyProviderError(
        code === 'CKR_PIN_INCORRECT' ? refusedPin
          : code === 'CKR_PIN_LOCKED' ? `token "${s.token}" has locked its user PIN (CKR_PIN_LOCKED): its security officer must reset it`
            : `login to token "${s.token}" failed (${code})`,
      ));
    }
  }
  const keks = new Map<string, { kek: Handle; mac: Handle }>();
  try {
    for (const label of s.keyLabels) {
      keks.set(label, {
        kek: findKey(m, session, label, [p.CKK_AES], 'AES key', s.token, 32, 32),
        mac: findKey(m, session, `${label}.mac`, [p.CKK_GENERIC_SECRET, p.CKK_SHA256_HMAC], 'generic secret (the KEK\u2019s MAC companion)', s.token, 32, 64),
      });
    }
  } catch (err) {
    fail(err);
  }
  const handle = (kekId: string, which: 'kek' | 'mac'): Handle => {
    const k = keks.get(kekId);
    if (!k) throw new KeyProviderError(`KEK ${kekId} is not among PALISADE_PKCS11_KEYS`);
    return k[which];
  };
  const gcm = (iv: Buffer, aad: string): Pkcs11Js.Mechanism => ({
    mechanism: p.CKM_AES_GCM,
    parameter: { type: p.CK_PARAMS_AES_GCM, iv, ivBits: iv.length * 8, aad: Buffer.from(aad), tagBits: 128 } as Pkcs11Js.GcmParams,
  });
  return {
    kind: 'pkcs11',
    ids: Object.freeze([...s.keyLabels]),
    wrap(kekId, key, aad) {
      const iv = randomBytes(12);
      m.C_EncryptInit(session, gcm(iv, aad), handle(kekId, 'kek'));
      const out = m.C_Encrypt(session, key, Buffer.alloc(key.length + 16));
      return joinWrapped(iv, out.subarray(0, out.length - 16), out.subarray(out.length - 16));
    },
    unwrap(kekId, wrapped, aad) {
      const { iv, ct, tag } = splitWrapped(wrapped);
      const kek = handle(kekId, 'kek');
      try {
        m.C_DecryptInit(session, gcm(iv, aad), kek);
        return Buffer.from(m.C_Decrypt(session, Buffer.concat([ct, tag]), Buffer.alloc(ct.length + 16)));
      } catch (err) {
        throw new SealedValueError(`a data key wrapped by KEK ${kekId} failed authentication in the token (${codeName(err)}): the key under that label is not the one that wrapped it, or the row was altered`);
      }
    },
    macKey(kekId, purpose) {
      m.C_SignInit(session, { mechanism: p.CKM_SHA256_HMAC }, handle(kekId, 'mac'));
      return Buffer.from(m.C_Sign(session, Buffer.concat([Buffer.from(`palisade:${purpose}`), Buffer.from([1])]), Buffer.alloc(32)));
    },
    close() {
      try {
        m.C_CloseSession(session);
      } catch {
        // Already closed (a second close, or the library finalised at exit).
      }
    },
  };
}

/**
 * `palisade keys create-kek LABEL`: a new KEK generated inside the token with the attributes the
 * provider requires (non-extractable, sensitive AES-256 `<label>` and its `<label>.mac` generic
 * secret), so that no tool beyond Palisade is needed to start with SoftHSM2 or an HSM. Refuses a
 * label the token already holds.
 */
export function createPkcs11Kek(s: Omit<Pkcs11Settings, 'keyLabels'>, label: string): void {
  const p = pkcs11js();
  const m = loadModule(s.module);
  const session = m.C_OpenSession(findSlot(m, s.token, s.module), p.CKF_SERIAL_SESSION | p.CKF_RW_SESSION);
  try {
    try {
      m.C_Login(session, p.CKU_USER, s.pin);
    } catch (err) {
      if (!isCode(err, p.CKR_USER_ALREADY_LOGGED_IN)) throw new KeyProviderError(`login to token "${s.token}" failed (${codeName(err)})`);
    }
    for (const l of [label, `${label}.mac`]) {
      m.C_FindObjectsInit(session, [{ type: p.CKA_CLASS, value: p.CKO_SECRET_KEY }, { type: p.CKA_LABEL, value: l }]);
      const found = m.C_FindObjects(session, 1);
      m.C_FindObjectsFinal(session);
      if (found.length > 0) throw new KeyProviderError(`PKCS#11 token "${s.token}" already holds a key labelled "${l}": choose another label`);
    }
    const common = [
      { type: p.CKA_CLASS, value: p.CKO_SECRET_KEY },
      { type: p.CKA_TOKEN, value: true },
      { type: p.CKA_PRIVATE, value: true },
      { type: p.CKA_SENSITIVE, value: true },
      { type: p.CKA_EXTRACTABLE, value: false },
      { type: p.CKA_VALUE_LEN, value: 32 },
    ];
    const aes = m.C_GenerateKey(session, { mechanism: p.CKM_AES_KEY_GEN }, [
      ...common, { type: p.CKA_KEY_TYPE, value: p.CKK_AES }, { type: p.CKA_LABEL, value: label },
      { type: p.CKA_ENCRYPT, value: true }, { type: p.CKA_DECRYPT, value: true },
    ]);
    try {
      m.C_GenerateKey(session, { mechanism: p.CKM_GENERIC_SECRET_KEY_GEN }, [
        ...common, { type: p.CKA_KEY_TYPE, value: p.CKK_GENERIC_SECRET }, { type: p.CKA_LABEL, value: `${label}.mac` },
        { type: p.CKA_SIGN, value: true },
      ]);
    } catch (err) {
      // Half a KEK (no .mac) is refused at start and its label is taken for a retry: undo it.
      try {
        m.C_DestroyObject(session, aes);
      } catch {
        // The token refused the clean-up too; the error below names the label to remove by hand.
      }
      throw new KeyProviderError(`PKCS#11 token "${s.token}" could not make ${label}.mac (${codeName(err)}); nothing was kept under "${label}"`);
    }
  } finally {
    try {
      m.C_CloseSession(session);
    } catch {
      // The outcome above is what matters.
    }
  }
}
