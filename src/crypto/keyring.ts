import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { InvariantError } from '../kernel/errors.js';

/**
 * A stored value that does not open (tampered, moved to another row, malformed, or naming a key
 * that is gone). Sealed values come only from our own database, so this is an integrity failure
 * for operators (a 500 with the request id, logged), never a client's error.
 */
export class SealedValueError extends InvariantError {
  constructor(message: string) {
    super(message);
    this.name = 'SealedValueError';
  }
}

/**
 * Envelope encryption. Key-encryption keys (KEKs) come from configuration and never touch the
 * database; each organization gets a random 256-bit data key, stored wrapped by the active KEK.
 * Field values are sealed with AES-256-GCM under the data key, with AAD binding
 * org + table + column + row so that a ciphertext copied to another row, column or tenant
 * fails to open.
 */

export interface Kek {
  id: string;
  key: Buffer;
}

export interface WrappedKey {
  id: string;
  kekId: string;
  wrapped: string;
}

export interface DataKeyStore {
  /** The active wrapped data key of a scope, or null when it has none yet. */
  active(scope: string): Promise<WrappedKey | null>;
  byId(scope: string, id: string): Promise<WrappedKey | null>;
  /** Stores a new active key; does nothing if another transaction stored the scope's active key first. */
  insert(scope: string, key: WrappedKey): Promise<void>;
}

export interface FieldRef {
  scope: string;
  table: string;
  column: string;
  row: string;
}

const SEAL_VERSION = 'v1';

function gcmEncrypt(key: Buffer, plaintext: Buffer, aad: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return [iv, ct, cipher.getAuthTag()].map((b) => b.toString('base64url')).join('.');
}

function gcmDecrypt(key: Buffer, sealed: string, aad: string): Buffer {
  const parts = sealed.split('.');
  if (parts.length !== 3) throw new SealedValueError('sealed value is malformed');
  const [iv, ct, tag] = parts.map((p) => Buffer.from(p, 'base64url')) as [Buffer, Buffer, Buffer];
  if (iv.length !== 12 || tag.length !== 16) throw new SealedValueError('sealed value is malformed');
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ct), decipher.final()]);
  } catch {
    throw new SealedValueError('sealed value failed authentication');
  }
}

function aadFor(ref: FieldRef): string {
  // Length-prefixed so that no two different references can produce the same AAD.
  return [ref.scope, ref.table, ref.column, ref.row].map((s) => `${s.length}:${s}`).join('|');
}

export class Keyring {
  private readonly keks: Map<string, Buffer>;
  private readonly activeKek: Kek;
  private readonly cache = new Map<string, Buffer>();

  constructor(keks: Kek[]) {
    if (keks.length === 0) throw new InvariantError('keyring needs at least one KEK');
    for (const k of keks) if (k.key.length !== 32) throw new InvariantError(`KEK ${k.id} is not 256 bits`);
    this.keks = new Map(keks.map((k) => [k.id, k.key]));
    // A repeated id would wrap with the first key and unwrap with the last: unreadable data.
    if (this.keks.size !== keks.length) throw new InvariantError('KEK ids must be unique');
    this.activeKek = keks[0] as Kek;
  }

  get activeKekId(): string {
    return this.activeKek.id;
  }

  private readonly macKeys = new Map<string, Buffer>();

  /**
   * HMAC-SHA256 under a key derived (HKDF) from KEK `kekId` for `purpose`. The database never
   * holds this key, so a role that can write rows cannot forge what it authenticates.
   */
  mac(purpose: string, kekId: string, data: string): string {
    const cacheKey = `${purpose}/${kekId}`;
    let key = this.macKeys.get(cacheKey);
    if (!key) {
      const kek = this.keks.get(kekId);
      if (!kek) throw new SealedValueError(`unknown key ${kekId}`);
      key = Buffer.from(hkdfSync('sha256', kek, Buffer.alloc(0), `palisade:${purpose}`, 32));
      this.macKeys.set(cacheKey, key);
    }
    return createHmac('sha256', key).update(data).digest('hex');
  }

  private unwrap(scope: string, w: WrappedKey): Buffer {
    const cacheKey = `${scope}/${w.id}`;
    const hit = this.cache.get(cacheKey);
    if (hit) return hit;
    const kek = this.keks.get(w.kekId);
    if (!kek) throw new InvariantError(`data key ${w.id} is wrapped by unknown KEK ${w.kekId}`);
    const key = gcmDecrypt(kek, w.wrapped, `data-key|${scope}|${w.id}`);
    this.cache.set(cacheKey, key);
    return key;
  }

  /** Creates a fresh data key for a scope, wrapped by the active KEK. */
  newDataKey(scope: string, id: string): WrappedKey {
    const key = randomBytes(32);
    return { id, kekId: this.activeKek.id, wrapped: gcmEncrypt(this.activeKek.key, key, `data-key|${scope}|${id}`) };
  }

  /** Re-wraps a data key under the active KEK (KEK rotation: data is not re-encrypted). */
  rewrap(scope: string, w: WrappedKey): WrappedKey {
    const key = this.unwrap(scope, w);
    return { id: w.id, kekId: this.activeKek.id, wrapped: gcmEncrypt(this.activeKek.key, key, `data-key|${scope}|${w.id}`) };
  }

  async seal(store: DataKeyStore, ref: FieldRef, plaintext: string, newKeyId: () => string): Promise<string> {
    let w = await store.active(ref.scope);
    if (!w) {
      // Read back what was stored: a concurrent first seal of the same scope may have won.
      await store.insert(ref.scope, this.newDataKey(ref.scope, newKeyId()));
      w = await store.active(ref.scope);
      if (!w) throw new InvariantError(`no active data key for ${ref.scope} after storing one`);
    }
    const key = this.unwrap(ref.scope, w);
    return `${SEAL_VERSION}.${w.id}.${gcmEncrypt(key, Buffer.from(plaintext, 'utf8'), aadFor(ref))}`;
  }

  async open(store: DataKeyStore, ref: FieldRef, sealed: string): Promise<string> {
    const first = sealed.indexOf('.');
    const second = sealed.indexOf('.', first + 1);
    if (first < 0 || second < 0 || sealed.slice(0, first) !== SEAL_VERSION) {
      throw new SealedValueError('sealed value is malformed');
    }
    const keyId = sealed.slice(first + 1, second);
    const w = await store.byId(ref.scope, keyId);
    if (!w) throw new SealedValueError('sealed value names an unknown data key');
    return gcmDecrypt(this.unwrap(ref.scope, w), sealed.slice(second + 1), aadFor(ref)).toString('utf8');
  }
}

export function parseKeks(spec: string): Kek[] {
  const seen = new Set<string>();
  return spec
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const idx = entry.indexOf(':');
      if (idx <= 0) throw new InvariantError('PALISADE_KEKS entries are id:base64key');
      const id = entry.slice(0, idx);
      if (!/^[A-Za-z0-9_-]{1,32}$/.test(id)) throw new InvariantError('KEK ids are 1-32 of [A-Za-z0-9_-]');
      // A repeated id would wrap with the first key but unwrap with the last one.
      if (seen.has(id)) throw new InvariantError(`KEK id ${id} is listed twice`);
      seen.add(id);
      const key = Buffer.from(entry.slice(idx + 1), 'base64');
      if (key.length !== 32) throw new InvariantError(`KEK ${id} must decode to 32 bytes`);
      return { id, key };
    });
}
