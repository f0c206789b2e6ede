import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { keyedHmacSha256 } from './primitives.js';
import { InvariantError } from '../kernel/errors.js';
import { KEK_ID, memoryKekProvider, parseKekValue, SealedValueError, type Kek, type KekProvider } from './kek-provider.js';

export { SealedValueError };
export type { Kek };

/**
 * Envelope encryption. Key-encryption keys (KEKs) come from a provider (kek-provider.ts: the
 * environment, files, or a PKCS#11 token) and never touch the database; each organization gets a random 256-bit data key, stored wrapped by the active KEK.
 * Field values are sealed with AES-256-GCM under the data key, with AAD binding
 * org + table + column + row so that a ciphertext copied to another row, column or tenant
 * fails to open.
 */

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
  private readonly provider: KekProvider;
  private readonly cache = new Map<string, Buffer>();
  /** MAC functions by purpose and key (keyedHmacSha256): the key's pads are computed once. */
  private readonly macKeys = new Map<string, (data: string) => string>();

  /** KEKs in process (env, file), or any provider (PKCS#11), the active KEK first. */
  constructor(keks: readonly Kek[] | KekProvider) {
    this.provider = Array.isArray(keks) ? memoryKekProvider(keks as readonly Kek[]) : (keks as KekProvider);
    if (this.provider.ids.length === 0) throw new InvariantError('keyring needs at least one KEK');
  }

  get activeKekId(): string {
    return this.provider.ids[0] as string;
  }

  /** Every KEK id the keyring can unwrap with, the active one first. */
  get kekIds(): readonly string[] {
    return this.provider.ids;
  }

  /** Ends the provider's session (a token's); the keyring is unusable afterwards. */
  close(): void {
    this.provider.close();
  }

  /**
   * HMAC-SHA256 under a key derived (HKDF) from KEK `kekId` for `purpose`. The database never
   * holds this key, so a role that can write rows cannot forge what it authenticates.
   */
  mac(purpose: string, kekId: string, data: string): string {
    const cacheKey = `${purpose}/${kekId}`;
    let mac = this.macKeys.get(cacheKey);
    if (!mac) {
      if (!this.provider.ids.includes(kekId)) throw new SealedValueError(`unknown key ${kekId}`);
      mac = keyedHmacSha256(this.provider.macKey(kekId, purpose));
      this.macKeys.set(cacheKey, mac);
    }
    return mac(data);
  }

  /** Zeroes and drops every unwrapped data key of a scope (its keys were destroyed, or may have been). */
  forgetScope(scope: string): void {
    for (const [k, key] of this.cache) {
      if (k.startsWith(`${scope}/`)) {
        key.fill(0);
        this.cache.delete(k);
      }
    }
  }

  private unwrap(scope: string, w: WrappedKey): Buffer {
    const cacheKey = `${scope}/${w.id}`;
    const hit = this.cache.get(cacheKey);
    if (hit) return hit;
    if (!this.provider.ids.includes(w.kekId)) throw new InvariantError(`data key ${w.id} is wrapped by unknown KEK ${w.kekId}`);
    const key = this.provider.unwrap(w.kekId, w.wrapped, `data-key|${scope}|${w.id}`);
    this.cache.set(cacheKey, key);
    return key;
  }

  /**
   * Throws unless `w` opens under its KEK (unknown KEK: InvariantError; wrong KEK value or altered
   * row: SealedValueError). Nothing is cached: `keys rotate-kek` checks every key before it
   * changes any, without holding them all.
   */
  assertUnwraps(scope: string, w: WrappedKey): void {
    if (!this.provider.ids.includes(w.kekId)) throw new InvariantError(`data key ${w.id} is wrapped by unknown KEK ${w.kekId}`);
    this.provider.unwrap(w.kekId, w.wrapped, `data-key|${scope}|${w.id}`).fill(0);
  }

  /** Creates a fresh data key for a scope, wrapped by the active KEK. */
  newDataKey(scope: string, id: string): WrappedKey {
    const key = randomBytes(32);
    return { id, kekId: this.activeKekId, wrapped: this.provider.wrap(this.activeKekId, key, `data-key|${scope}|${id}`) };
  }

  /**
   * Re-wraps a data key under the active KEK (KEK rotation: data is not re-encrypted). The key is
   * not added to the cache: a rotation passes every org's key once, and holding them all would
   * grow with the number of orgs.
   */
  rewrap(scope: string, w: WrappedKey): WrappedKey {
    let key = this.cache.get(`${scope}/${w.id}`);
    if (!key) {
      if (!this.provider.ids.includes(w.kekId)) throw new InvariantError(`data key ${w.id} is wrapped by unknown KEK ${w.kekId}`);
      key = this.provider.unwrap(w.kekId, w.wrapped, `data-key|${scope}|${w.id}`);
    }
    return { id: w.id, kekId: this.activeKekId, wrapped: this.provider.wrap(this.activeKekId, key, `data-key|${scope}|${w.id}`) };
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

  /**
   * HMAC-SHA256 of `value` under a key derived (HKDF, purpose `blind-index`) from the scope's
   * active data key, made on first use: an equality index over a sealed column that tells nothing
   * without the key. Stable only while the scope keeps its key (a system scope: nothing rotates it).
   */
  async blindIndex(store: DataKeyStore, scope: string, value: string, newKeyId: () => string): Promise<string> {
    let w = await store.active(scope);
    if (!w) {
      await store.insert(scope, this.newDataKey(scope, newKeyId()));
      w = await store.active(scope);
      if (!w) throw new InvariantError(`no active data key for ${scope} after storing one`);
    }
    const cacheKey = `blind-index/${scope}/${w.id}`;
    let mac = this.macKeys.get(cacheKey);
    if (!mac) {
      mac = keyedHmacSha256(Buffer.from(hkdfSync('sha256', this.unwrap(scope, w), Buffer.alloc(0), 'palisade blind-index v1', 32)));
      this.macKeys.set(cacheKey, mac);
    }
    return mac(value);
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
      if (!KEK_ID.test(id)) throw new InvariantError('KEK ids are 1-32 of [A-Za-z0-9_-]');
      // A repeated id would wrap with the first key but unwrap with the last one.
      if (seen.has(id)) throw new InvariantError(`KEK id ${id} is listed twice`);
      seen.add(id);
      const key = parseKekValue(entry.slice(idx + 1));
      if (!key) throw new InvariantError(`KEK ${id} must decode to 32 bytes`);
      return { id, key };
    });
}
