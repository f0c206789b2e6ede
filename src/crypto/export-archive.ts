import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, sign, verify, type JsonWebKey } from 'node:crypto';
import type { Transform } from 'node:stream';
import { sha256Hex } from './primitives.js';
import { recordOpener, sealRecord } from './sealed-records.js';

/**
 * The crypto of tenant export archives (src/domains/exports): the deployment's Ed25519 signing
 * key for manifests, and the archive's encryption at rest.
 *
 * At rest an archive is a sealed record stream (sealed-records.ts) under the export's own key,
 * labelled `palisade-export/v1` with the export id. Records are appended batch by batch (a crash
 * loses at most the uncommitted record, which the job truncates), reordering or splicing fails
 * the tag, and a file cut short has no final record: the reader refuses it.
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

/** One encrypted record of an archive (sealed-records.ts, labelled as an export's). */
export function sealArchiveRecord(key: Buffer, exportId: string, index: number, final: boolean, plaintext: Buffer): Buffer {
  return sealRecord('palisade-export/v1', key, exportId, index, final, plaintext);
}

/** Streams an archive's plaintext out of its records; fails on any altered, missing or trailing record. */
export function archiveOpener(key: Buffer, exportId: string): Transform {
  return recordOpener('palisade-export/v1', key, exportId);
}

/** An incremental SHA-256 (a file's digest as it streams past). */
export function sha256Hasher(): { update(b: Buffer): void; hex(): string } {
  const h = createHash('sha256');
  return { update: (b) => void h.update(b), hex: () => h.digest('hex') };
}
