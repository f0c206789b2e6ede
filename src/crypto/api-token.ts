import { randomBytes } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * API key tokens: `pal_sk_<30 random base62><6 base62 CRC32>` (secret keys) and `pal_pk_…`
 * (publishable keys), 43 characters in all. 30 base62 characters carry 178 bits. The checksum
 * (CRC32 of everything before it, as GitHub's tokens carry) lets a mistyped or truncated key be
 * refused before any database lookup, and lets secret scanners recognise a real key with few
 * false positives. Only SHA-256 of the whole token is stored.
 */
export type ApiTokenKind = 'sk' | 'pk';

const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const RANDOM_CHARS = 30;
const CHECK_CHARS = 6;
export const API_TOKEN_LENGTH = 'pal_sk_'.length + RANDOM_CHARS + CHECK_CHARS;
const TOKEN_RE = /^pal_(sk|pk)_([0-9A-Za-z]{36})$/;

function base62(n: number, width: number): string {
  let out = '';
  let v = n;
  for (let i = 0; i < width; i++) {
    out = (ALPHABET[v % 62] as string) + out;
    v = Math.floor(v / 62);
  }
  return out;
}

function checksum(body: string): string {
  return base62(crc32(body), CHECK_CHARS);
}

export function generateApiToken(kind: ApiTokenKind): string {
  // Rejection sampling keeps every character uniform (256 is not a multiple of 62).
  let random = '';
  while (random.length < RANDOM_CHARS) {
    for (const b of randomBytes(RANDOM_CHARS * 2)) {
      if (b < 248) random += ALPHABET[b % 62];
      if (random.length === RANDOM_CHARS) break;
    }
  }
  const body = `pal_${kind}_${random}`;
  return body + checksum(body);
}

/** The kind of a well-formed token whose checksum holds; null for anything else. */
export function parseApiToken(token: string): ApiTokenKind | null {
  const m = TOKEN_RE.exec(token);
  if (!m) return null;
  const body = token.slice(0, token.length - CHECK_CHARS);
  return checksum(body) === token.slice(-CHECK_CHARS) ? (m[1] as ApiTokenKind) : null;
}
