import { randomToken, sha256Hex } from './primitives.js';

/**
 * Single-use secrets that travel in a mail link or a request body: `pal_<kind>_<43 base64url
 * characters>`. The secret part is 256 random bits. The database keeps only its SHA-256 and
 * finds the row by that hash, so it never holds a token that works.
 *
 * The lookup compares hashes in an index, and that is not constant-time. It is still safe:
 * the caller picks the secret, not its hash. Timing can at most show how much of a stored hash
 * the hash of a guess matches. A secret whose hash matches a chosen prefix is no closer to one
 * that hashes to the whole stored value (SHA-256 is preimage-resistant). Where a presented
 * secret is compared with a stored one directly (invitation tokens, after a lookup by id), the
 * comparison is `safeEqual`.
 *
 * One list of kinds, one format: a new flow adds a kind here instead of copying a regex.
 */
export const OPAQUE_TOKEN_PREFIXES = {
  /** Password reset link, 30 minutes. */
  passwordReset: 'pal_pwr_',
  /** Email verification link, 24 hours. */
  emailVerification: 'pal_emv_',
  /** Pending sign-in between the password and the second factor, 5 minutes. */
  mfaChallenge: 'pal_mfa_',
  /** WebAuthn ceremony challenge, 2 minutes. */
  webauthnCeremony: 'pal_wac_',
  /** The SSO callback's handover to the page that asks for the second factor, 60 seconds. */
  ssoHandover: 'pal_sho_',
  /** Magic sign-in link, 15 minutes, only in the browser that asked for it. */
  magicLink: 'pal_mgl_',
  /** Tenant export download link, 15 minutes (PALISADE_EXPORT_LINK_MINUTES), one download. */
  exportDownload: 'pal_exd_',
} as const;

export type OpaqueTokenKind = keyof typeof OPAQUE_TOKEN_PREFIXES;

const SECRET = /^[A-Za-z0-9_-]{43}$/;

/** A fresh token of `kind` and the hash to store for it. */
export function mintOpaqueToken(kind: OpaqueTokenKind): { token: string; hash: string } {
  const secret = randomToken(32);
  return { token: `${OPAQUE_TOKEN_PREFIXES[kind]}${secret}`, hash: sha256Hex(secret) };
}

/**
 * The stored hash a presented token would have, or null when it is not a well-formed token of
 * `kind`. A token of another kind is refused here, before any lookup.
 */
export function opaqueTokenHash(kind: OpaqueTokenKind, token: string): string | null {
  const prefix = OPAQUE_TOKEN_PREFIXES[kind];
  if (!token.startsWith(prefix)) return null;
  const secret = token.slice(prefix.length);
  return SECRET.test(secret) ? sha256Hex(secret) : null;
}
