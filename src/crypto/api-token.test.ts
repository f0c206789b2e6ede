import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { API_TOKEN_LENGTH, generateApiToken, parseApiToken } from './api-token.js';

describe('API key token format', () => {
  it('generates recognisable, checksummed tokens of both kinds', () => {
    for (const kind of ['sk', 'pk'] as const) {
      const t = generateApiToken(kind);
      expect(t).toMatch(new RegExp(`^pal_${kind}_[0-9A-Za-z]{36}$`));
      expect(t).toHaveLength(API_TOKEN_LENGTH);
      expect(parseApiToken(t)).toBe(kind);
    }
    const many = new Set(Array.from({ length: 2000 }, () => generateApiToken('sk')));
    expect(many.size).toBe(2000);
  });

  it('refuses every single-character typo, truncation, kind swap and foreign prefix before any lookup', () => {
    const t = generateApiToken('sk');
    const alphabet = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
    let accepted = 0;
    for (let i = 7; i < t.length; i++) {
      for (const ch of alphabet) {
        if (ch === t[i]) continue;
        if (parseApiToken(t.slice(0, i) + ch + t.slice(i + 1)) !== null) accepted++;
      }
    }
    // CRC32 catches every single-character substitution.
    expect(accepted).toBe(0);
    expect(parseApiToken(t.slice(0, -1))).toBeNull();
    expect(parseApiToken(`${t}x`)).toBeNull();
    expect(parseApiToken(t.replace('pal_sk_', 'pal_pk_'))).toBeNull();
    expect(parseApiToken(t.replace('pal_', 'ghp_'))).toBeNull();
    expect(parseApiToken(` ${t}`)).toBeNull();
  });

  it('never accepts arbitrary strings (property)', () => {
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (s) => parseApiToken(s) === null || /^pal_(sk|pk)_/.test(s)));
    fc.assert(
      fc.property(fc.stringMatching(/^pal_sk_[0-9A-Za-z]{36}$/), (s) => {
        // A random body passes the checksum with probability ~62^-6: effectively never.
        return parseApiToken(s) === null || parseApiToken(s) === 'sk';
      }),
    );
  });
});
