import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';

export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

const ID_BYTES = 12;
let idPool = Buffer.alloc(0);
let idAt = 0;

/**
 * A request id: randomToken(12)'s form (16 base64url characters), cut from a pool of random
 * bytes drawn 256 ids at a time: one randomBytes call per request cost more than the id is worth
 * (docs/performance.md). Not a secret; nothing may use it as one.
 */
export function requestId(): string {
  if (idAt + ID_BYTES > idPool.length) {
    idPool = randomBytes(ID_BYTES * 256);
    idAt = 0;
  }
  idAt += ID_BYTES;
  return idPool.toString('base64url', idAt - ID_BYTES, idAt);
}

/** `length` characters drawn uniformly from `alphabet` (rejection sampling: no modulo bias). */
export function randomCode(length: number, alphabet: string): string {
  if (alphabet.length < 2 || alphabet.length > 256) throw new Error('alphabet must have 2..256 characters');
  const limit = 256 - (256 % alphabet.length);
  let out = '';
  while (out.length < length) {
    for (const b of randomBytes(length * 2)) {
      if (b < limit) out += alphabet[b % alphabet.length];
      if (out.length === length) break;
    }
  }
  return out;
}

export function newId(): string {
  return randomUUID();
}

export function sha256Hex(input: string | Buffer): string {
  return createHash('sha256').update(input).digest('hex');
}

export function hmacSha256(key: Buffer, input: string): Buffer {
  return createHmac('sha256', key).update(input).digest();
}

/** Constant-time comparison of two strings; differing lengths compare unequal without leaking where. */
export function safeEqual(a: string, b: string): boolean {
  const ab = Buffer.from(a);
  const bb = Buffer.from(b);
  if (ab.length !== bb.length) {
    timingSafeEqual(ab, ab);
    return false;
  }
  return timingSafeEqual(ab, bb);
}

export function randomKey(): Buffer {
  return randomBytes(32);
}
