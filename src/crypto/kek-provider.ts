import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { InvariantError } from '../kernel/errors.js';

/**
 * Where key-encryption keys live. The keyring asks a provider to wrap and unwrap data keys and
 * for MAC keys (audit chain); it never needs a KEK's bytes. `memory` providers (PALISADE_KEKS,
 * PALISADE_KEK_DIR) hold them in process; the PKCS#11 provider keeps them in a token, where the
 * wrapping happens. Every method is synchronous: PKCS#11 calls are, and seal/open must stay so
 * for the keyring's callers.
 */
export interface KekProvider {
  readonly kind: 'memory' | 'pkcs11';
  /** KEK ids, the active (wrapping) one first. */
  readonly ids: readonly string[];
  /** AES-256-GCM of `key` with `aad`, as `iv.ciphertext.tag` (base64url): the same format whichever provider made it. */
  wrap(kekId: string, key: Buffer, aad: string): string;
  /** Throws InvariantError for a KEK it does not hold, SealedValueError when the wrapped key does not authenticate. */
  unwrap(kekId: string, wrapped: string, aad: string): Buffer;
  /**
   * A 32-byte MAC key for `purpose` under KEK `kekId`: HKDF-SHA256(KEK, info "palisade:<purpose>").
   * A token computes the same function inside (see pkcs11.ts), so chains keep verifying when
   * KEKs move from the environment into a token.
   */
  macKey(kekId: string, purpose: string): Buffer;
  close(): void;
}

/** How PALISADE_KEK_PROVIDER was configured (config/keks.ts). */
export type KekProviderSettings =
  | { kind: 'env' }
  | { kind: 'file'; dir: string }
  | { kind: 'pkcs11'; module: string; token: string; pin: string; keyLabels: readonly string[] };

export const DEFAULT_PKCS11_MODULE = '/usr/lib/softhsm/libsofthsm2.so';

/** KEK ids: stored beside each wrapped key and audit event, and in checkpoints (at most 32). */
export const KEK_ID = /^[A-Za-z0-9_-]{1,32}$/;

export interface Kek {
  id: string;
  key: Buffer;
}

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

/** One base64 KEK value, or null when it is not 32 bytes. */
export function parseKekValue(text: string): Buffer | null {
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(text)) return null;
  const key = Buffer.from(text, 'base64');
  return key.length === 32 ? key : null;
}

export function joinWrapped(iv: Buffer, ct: Buffer, tag: Buffer): string {
  return [iv, ct, tag].map((b) => b.toString('base64url')).join('.');
}

export function splitWrapped(wrapped: string): { iv: Buffer; ct: Buffer; tag: Buffer } {
  const parts = wrapped.split('.');
  if (parts.length !== 3) throw new SealedValueError('wrapped key is malformed');
  const [iv, ct, tag] = parts.map((p) => Buffer.from(p, 'base64url')) as [Buffer, Buffer, Buffer];
  if (iv.length !== 12 || tag.length !== 16) throw new SealedValueError('wrapped key is malformed');
  return { iv, ct, tag };
}

export function memoryKekProvider(keks: readonly Kek[]): KekProvider {
  if (keks.length === 0) throw new InvariantError('keyring needs at least one KEK');
  for (const k of keks) if (k.key.length !== 32) throw new InvariantError(`KEK ${k.id} is not 256 bits`);
  const byId = new Map(keks.map((k) => [k.id, k.key]));
  // A repeated id would wrap with the first key and unwrap with the last: unreadable data.
  if (byId.size !== keks.length) throw new InvariantError('KEK ids must be unique');
  const kek = (id: string): Buffer => {
    const k = byId.get(id);
    if (!k) throw new InvariantError(`KEK ${id} is not configured`);
    return k;
  };
  return {
    kind: 'memory',
    ids: Object.freeze(keks.map((k) => k.id)),
    wrap(kekId, key, aad) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', kek(kekId), iv);
      cipher.setAAD(Buffer.from(aad));
      const ct = Buffer.concat([cipher.update(key), cipher.final()]);
      return joinWrapped(iv, ct, cipher.getAuthTag());
    },
    unwrap(kekId, wrapped, aad) {
      const { iv, ct, tag } = splitWrapped(wrapped);
      const decipher = createDecipheriv('aes-256-gcm', kek(kekId), iv);
      decipher.setAAD(Buffer.from(aad));
      decipher.setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(ct), decipher.final()]);
      } catch {
        throw new SealedValueError(`a data key wrapped by KEK ${kekId} failed authentication: the KEK under that id is not the one that wrapped it, or the row was altered`);
      }
    },
    macKey(kekId, purpose) {
      return Buffer.from(hkdfSync('sha256', kek(kekId), Buffer.alloc(0), `palisade:${purpose}`, 32));
    },
    close() {},
  };
}
