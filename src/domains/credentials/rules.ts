import { AppError } from '../../kernel/errors.js';
import { neutralizeText } from '../../kernel/text.js';

/**
 * The closed sets and bounds of the vault, in one place: the routes validate with them, the
 * vault re-checks what host code passes, and the migration's CHECKs say the same.
 */
export const CREDENTIAL_KINDS = ['api_token', 'oauth_client_secret', 'password', 'other'] as const;
export type CredentialKind = (typeof CREDENTIAL_KINDS)[number];

export const USE_STATUSES = ['ok', 'failed'] as const;
export type UseStatus = (typeof USE_STATUSES)[number];

/**
 * Lower-case letters, digits, dot, underscore and dash, 1 to 64, starting and ending with a letter
 * or digit: a name is shown, logged and typed into code, so it must be unambiguous and inert.
 */
export const NAME_PATTERN = /^[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?$/;
export const NAME_RULE = 'lower-case letters, digits, dots, underscores and dashes, 1 to 64 long, starting and ending with a letter or digit';

/** Who asked for a credential (`{ by }`): a name as above that may also carry colons (`psa-sync:tenant-42`). */
export const CALLER_PATTERN = /^[a-z0-9](?:[a-z0-9._:-]{0,62}[a-z0-9])?$/;

/**
 * The largest value: tokens and client secrets are far smaller; a PEM private key or a service
 * account's JSON fits. In UTF-8 bytes, as stored before sealing.
 */
export const MAX_SECRET_BYTES = 8192;

/** Text bounds (code points) of descriptions, rotation reasons and use messages. */
export const MAX_TEXT = 200;

/** An org's credentials are a few dozen integrations; the cap bounds what one org can store. */
export const MAX_CREDENTIALS_PER_ORG = 100;

/** Why `secret` cannot be stored, or null. Never quotes the value. */
export function secretProblem(secret: string): string | null {
  if (secret.trim().length === 0) return 'must not be empty';
  if (Buffer.byteLength(secret, 'utf8') > MAX_SECRET_BYTES) return `must be at most ${MAX_SECRET_BYTES} bytes`;
  // NUL cannot be stored in a PostgreSQL text value downstream of host code, and no credential has one.
  if (secret.includes('\u0000')) return 'must not contain NUL characters';
  // A lone surrogate would be stored as U+FFFD: host code would get another value than was entered.
  if (/[\uD800-\uDFFF]/u.test(secret)) return 'must be well-formed Unicode (no lone surrogates)';
  return null;
}

export function assertName(name: unknown): asserts name is string {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) throw new AppError('validation_failed', `a credential name is ${NAME_RULE}`);
}

export function assertCaller(by: unknown): asserts by is string {
  if (typeof by !== 'string' || !CALLER_PATTERN.test(by)) {
    throw new AppError('validation_failed', 'the caller name (by) is lower-case letters, digits, dots, underscores, dashes and colons, 1 to 64 long');
  }
}

/**
 * A use message as the log keeps it: the value redacted wherever the host quoted it (an error
 * text echoing a rejected token), then made inert and cut to MAX_TEXT. A message never makes a
 * use fail: it is the host's report, taken as well as it can be.
 */
export function cleanMessage(message: string, secret: string): string {
  if (secret.length === 0) return neutralizeText(message, MAX_TEXT);
  const cleaned = neutralizeText(message.split(secret).join('[redacted]'), MAX_TEXT);
  // A value with line breaks or tabs reads differently once neutralised: look for that form too.
  const shown = neutralizeText(secret, MAX_SECRET_BYTES);
  return shown.length > 0 ? cleaned.split(shown).join('[redacted]') : cleaned;
}
