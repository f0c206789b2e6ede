import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { hmacSha256, keyedHmacSha256, newId, randomKey, randomToken, requestId, safeEqual, sha256Hex } from './primitives.js';

describe('safeEqual', () => {
  it.each([
    ['', '', true],
    ['secret', 'secret', true],
    ['secret', 'secreT', false],
    ['secret', 'secret ', false],
    ['secret', '', false],
    ['', 'x', false],
    ['e\u0301', '\u00e9', false],
    ['\u00e9', '\u00e9', true],
    // Same UTF-16 length, different UTF-8 length: must not throw.
    ['\u00e9', 'e', false],
  ])('safeEqual(%j, %j) is %s', (a, b, expected) => {
    expect(safeEqual(a, b)).toBe(expected);
    expect(safeEqual(b, a)).toBe(expected);
  });

  it('compares long tokens that differ only in their last character', () => {
    const t = randomToken(64);
    const other = t.slice(0, -1) + (t.endsWith('A') ? 'B' : 'A');
    expect(safeEqual(t, t.slice())).toBe(true);
    expect(safeEqual(t, other)).toBe(false);
  });
});

describe('hashes and randomness', () => {
  it('sha256Hex matches the FIPS 180-2 "abc" vector', () => {
    expect(sha256Hex('abc')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
    expect(sha256Hex(Buffer.from('abc'))).toBe(sha256Hex('abc'));
  });

  it('hmacSha256 matches RFC 4231 test case 2', () => {
    expect(hmacSha256(Buffer.from('Jefe'), 'what do ya want for nothing?').toString('hex')).toBe(
      '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
    );
  });

  it('keyedHmacSha256 is HMAC-SHA256: RFC 4231 case 2, and createHmac for short, block-sized and long keys', () => {
    expect(keyedHmacSha256(Buffer.from('Jefe'))('what do ya want for nothing?')).toBe('5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843');
    for (const len of [0, 1, 32, 63, 64, 65, 131]) {
      const key = Buffer.alloc(len, 0xa5);
      const mac = keyedHmacSha256(key);
      // Used twice: the prepared states must not be consumed by a message.
      for (const input of ['', 'événement ✓', 'x'.repeat(1000), '']) {
        expect(mac(input)).toBe(createHmac('sha256', key).update(input).digest('hex'));
      }
    }
  });

  it('requestId has randomToken(12)\u2019s form and does not repeat across pool refills', () => {
    const ids = new Set(Array.from({ length: 2000 }, () => requestId()));
    expect(ids.size).toBe(2000);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{16}$/);
  });

  it('randomToken is base64url of the requested entropy and does not repeat', () => {
    const tokens = new Set(Array.from({ length: 1000 }, () => randomToken()));
    expect(tokens.size).toBe(1000);
    for (const t of [...tokens].slice(0, 50)) {
      expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(Buffer.from(t, 'base64url')).toHaveLength(32);
    }
    expect(Buffer.from(randomToken(16), 'base64url')).toHaveLength(16);
  });

  it('newId is a v4 UUID, randomKey 32 random bytes', () => {
    expect(newId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const [k1, k2] = [randomKey(), randomKey()];
    expect(k1).toHaveLength(32);
    expect(k1.equals(k2)).toBe(false);
  });
});
