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

/**
 * HMAC-SHA256 (hex) under one fixed key, for keys used over and over (the audit chain's, a blind
 * index's): the two SHA-256 states of the padded key are computed once and copied per message,
 * where createHmac recomputes them on every call (≈1.35× the rate on an audit event).
 */
export function keyedHmacSha256(key: Buffer): (input: string) => string {
  const block = key.length > 64 ? createHash('sha256').update(key).digest() : key;
  const ipad = Buffer.alloc(64, 0x36);
  const opad = Buffer.alloc(64, 0x5c);
  for (let i = 0; i < block.length; i++) {
    ipad[i] = (ipad[i] as number) ^ (block[i] as number);
    opad[i] = (opad[i] as number) ^ (block[i] as number);
  }
  const inner = createHash('sha256').update(ipad);
  const outer = createHash('sha256').update(opad);
  ipad.fill(0);
  opad.fill(0);
  return (input) => outer.copy().update(inner.copy().update(input).digest()).digest('hex');
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
