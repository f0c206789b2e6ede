import { createCipheriv, createDecipheriv, createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type JsonWebKey } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { sha256Hex } from './primitives.js';

/**
 * The crypto of tenant export archives (src/domains/exports): the deployment's Ed25519 signing
 * key for manifests, and the archive's encryption at rest.
 *
 * At rest an archive is a sequence of records, each AES-256-GCM under the export's own key:
 * `u32 length | u8 final | 12-byte nonce | ciphertext | 16-byte tag`, the AAD binding the export
 * id, the record's index and the final flag. Records are appended batch by batch (a crash loses
 * at most the uncommitted record, which the job truncates), reordering or splicing fails the tag,
 * and a file cut short has no final record: the reader refuses it.
 */

export interface ExportSigningKey {
  kid: string;
  publicJwk: JsonWebKey & { kid: string; alg: 'EdDSA'; use: 'sig' };
  /** PKCS#8 DER, base64: seal it before it is stored. */
  privatePkcs8: string;
}

export function generateExportSigningKey(): ExportSigningKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' });
  // RFC 7638-style thumbprint of the public key: the same key always has the same id.
  const kid = sha256Hex(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x })).slice(0, 32);
  return {
    kid,
    publicJwk: { ...jwk, kid, alg: 'EdDSA', use: 'sig' },
    privatePkcs8: privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64'),
  };
}

/** The public half (JWK `x`) of a private signing key: what a published key must match. */
export function publicXOf(privatePkcs8: string): string {
  const key = createPrivateKey({ key: Buffer.from(privatePkcs8, 'base64'), format: 'der', type: 'pkcs8' });
  return String(createPublicKey(key).export({ format: 'jwk' }).x);
}

/** Detached Ed25519 signature of `data`, base64. */
export function signDetached(privatePkcs8: string, data: Buffer): string {
  const key = createPrivateKey({ key: Buffer.from(privatePkcs8, 'base64'), format: 'der', type: 'pkcs8' });
  return sign(null, data, key).toString('base64');
}

export function verifyDetached(publicJwk: { kty: string; crv: string; x: string }, data: Buffer, signature: string): boolean {
  try {
    return verify(null, data, createPublicKey({ key: { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x } satisfies JsonWebKey, format: 'jwk' }), Buffer.from(signature, 'base64'));
  } catch {
    return false;
  }
}

export const newArchiveKey = (): Buffer => randomBytes(32);

const aad = (exportId: string, index: number, final: boolean) => Buffer.from(`palisade-export/v1/${exportId}/${index}/${final ? 1 : 0}`);

/** One encrypted record of an archive. */
export function sealArchiveRecord(key: Buffer, exportId: string, index: number, final: boolean, plaintext: Buffer): Buffer {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aad(exportId, index, final));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(12 + body.length + 16, 0);
  head.writeUInt8(final ? 1 : 0, 4);
  return Buffer.concat([head, nonce, body, cipher.getAuthTag()]);
}

/** Streams an archive's plaintext out of its records; fails on any altered, missing or trailing record. */
export function archiveOpener(key: Buffer, exportId: string): Transform {
  let pending: Buffer = Buffer.alloc(0);
  let index = 0;
  let ended = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      try {
        while (pending.length >= 5) {
          const len = pending.readUInt32BE(0);
          if (len < 28 || len > 64 * 1024 * 1024) throw new Error('archive record of an impossible length');
          if (pending.length < 5 + len) break;
          if (ended) throw new Error('archive has records after its final one');
          const final = pending.readUInt8(4) === 1;
          const rec = pending.subarray(5, 5 + len);
          const decipher = createDecipheriv('aes-256-gcm', key, rec.subarray(0, 12));
          decipher.setAAD(aad(exportId, index, final));
          decipher.setAuthTag(rec.subarray(len - 16));
          this.push(Buffer.concat([decipher.update(rec.subarray(12, len - 16)), decipher.final()]));
          pending = pending.subarray(5 + len);
          index++;
          ended = final;
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      done(pending.length > 0 || !ended ? new Error('archive is truncated') : null);
    },
  });
}

/** An incremental SHA-256 (a file's digest as it streams past). */
export function sha256Hasher(): { update(b: Buffer): void; hex(): string } {
  const h = createHash('sha256');
  return { update: (b) => void h.update(b), hex: () => h.digest('hex') };
}
