import { describe, expect, it } from 'vitest';
import { mintOpaqueToken, opaqueTokenHash, OPAQUE_TOKEN_PREFIXES, type OpaqueTokenKind } from './opaque-token.js';
import { sha256Hex } from './primitives.js';

const KINDS = Object.keys(OPAQUE_TOKEN_PREFIXES) as OpaqueTokenKind[];

describe('opaque tokens', () => {
  it.each(KINDS)('%s: a minted token carries its prefix and 256 bits, and only the hash of its secret is stored', (kind) => {
    const { token, hash } = mintOpaqueToken(kind);
    const prefix = OPAQUE_TOKEN_PREFIXES[kind];
    expect(token).toMatch(new RegExp(`^${prefix}[A-Za-z0-9_-]{43}$`));
    expect(hash).toBe(sha256Hex(token.slice(prefix.length)));
    expect(hash).not.toContain(token.slice(prefix.length));
    expect(opaqueTokenHash(kind, token)).toBe(hash);
    expect(mintOpaqueToken(kind).token).not.toBe(token);
  });

  it('refuses a token of another kind, a truncated, padded or re-alphabeted one, before any lookup', () => {
    const { token } = mintOpaqueToken('emailVerification');
    const secret = token.slice('pal_emv_'.length);
    for (const bad of [
      `pal_pwr_${secret}`, `pal_mfa_${secret}`, secret, token.slice(0, -1), `${token}A`, ` ${token}`, `${token}\n`,
      `pal_emv_${secret.slice(0, -1)}+`, `pal_emv_${secret.slice(0, -1)}=`, 'pal_emv_', '', `PAL_EMV_${secret}`,
    ]) {
      expect(opaqueTokenHash('emailVerification', bad), bad).toBeNull();
    }
    expect(opaqueTokenHash('passwordReset', token)).toBeNull();
  });

  it('the prefixes are distinct, so no token is valid for two flows', () => {
    const prefixes = Object.values(OPAQUE_TOKEN_PREFIXES);
    expect(new Set(prefixes).size).toBe(prefixes.length);
  });
});
