/**
 * The closed set of error codes. Domains throw AppError(code); only http/error-map knows
 * HTTP statuses. Every credential failure reaches the client as `invalid_credentials` or
 * `unauthenticated`, never as something that tells which part was wrong.
 */
export const ERROR_CODES = [
  'validation_failed',
  'malformed_request',
  'unauthenticated',
  'invalid_credentials',
  'session_expired',
  'csrf_rejected',
  'forbidden',
  'step_up_required',
  'mfa_enrollment_required',
  'email_unverified',
  'domain_unverified',
  'sso_failed',
  'sso_required',
  'ip_not_allowed',
  'origin_not_allowed',
  'not_found',
  'conflict',
  'last_owner',
  'privilege_escalation',
  'weak_password',
  'token_invalid',
  'payload_too_large',
  'quota_exceeded',
  'unsupported_media_type',
  'malware_detected',
  'rate_limited',
  'unavailable',
  'scanner_unavailable',
  'internal',
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Members a problem may carry beyond the standard ones (RFC 9457 extension members). */
export interface ProblemExtras {
  /** sso_required: where the user's sign-in starts instead (the SSO start URL for their email). */
  ssoStart?: string;
  /** Sent as the Retry-After header (seconds): when trying again may succeed. */
  retryAfterSeconds?: number;
}

export interface FieldIssue {
  path: string;
  message: string;
}

/** An error caused by what the caller sent or is allowed to do: safe to show. */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly detail: string | undefined;
  readonly issues: FieldIssue[] | undefined;
  readonly extras: ProblemExtras | undefined;

  constructor(code: ErrorCode, detail?: string, issues?: FieldIssue[], extras?: ProblemExtras) {
    super(detail ? `${code}: ${detail}` : code);
    this.name = 'AppError';
    this.code = code;
    this.detail = detail;
    this.issues = issues;
    this.extras = extras;
  }
}

/**
 * Programmer misuse or a broken invariant (a route without a permission, a tenant query
 * without a tenant). Never shown to a client: it maps to a 500 with the request id only.
 */
export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

/**
 * What a background job logs of an error it survives: its code (a PostgreSQL SQLSTATE, a Node
 * errno) or its class name, never its message or detail, which can quote the row it failed on.
 */
export function errorCodeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown';
}
