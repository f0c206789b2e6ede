import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { AppError, type ErrorCode } from '../kernel/errors.js';

/** The only place that knows HTTP statuses. Answers are RFC 9457 problem+json. */
const STATUS: Record<ErrorCode, number> = {
  validation_failed: 400,
  malformed_request: 400,
  unauthenticated: 401,
  invalid_credentials: 401,
  session_expired: 401,
  csrf_rejected: 403,
  forbidden: 403,
  step_up_required: 403,
  mfa_enrollment_required: 403,
  email_unverified: 403,
  domain_unverified: 422,
  sso_failed: 401,
  sso_required: 403,
  ip_not_allowed: 403,
  origin_not_allowed: 403,
  not_found: 404,
  conflict: 409,
  last_owner: 409,
  privilege_escalation: 403,
  weak_password: 422,
  token_invalid: 400,
  payload_too_large: 413,
  quota_exceeded: 413,
  unsupported_media_type: 415,
  malware_detected: 422,
  rate_limited: 429,
  unavailable: 503,
  scanner_unavailable: 503,
  internal: 500,
};

const TITLES: Record<ErrorCode, string> = {
  validation_failed: 'The request is not valid',
  malformed_request: 'The request could not be read',
  unauthenticated: 'Authentication required',
  invalid_credentials: 'Invalid credentials',
  session_expired: 'Session expired',
  csrf_rejected: 'Cross-site request refused',
  forbidden: 'Not allowed',
  step_up_required: 'Confirm it is you: verify a second factor (or your password) and retry',
  mfa_enrollment_required: 'This organization requires a second factor: enroll one to continue',
  email_unverified: 'Verify your email address first: follow the link we mailed to it',
  domain_unverified: 'The domain\u2019s DNS does not hold the verification record yet',
  sso_failed: 'The single sign-on did not complete: start it again',
  sso_required: 'Your organization requires single sign-on for this address: sign in through its identity provider',
  ip_not_allowed: 'This action is not allowed from your network address',
  origin_not_allowed: 'Publishable keys work only from the organization\u2019s registered browser origins',
  not_found: 'Not found',
  conflict: 'Conflict',
  last_owner: 'The organization needs at least one owner',
  privilege_escalation: 'You cannot grant what you do not hold',
  weak_password: 'Password does not meet the policy',
  token_invalid: 'The token is invalid or expired',
  payload_too_large: 'Payload too large',
  quota_exceeded: 'The organization\u2019s storage quota would be exceeded',
  unsupported_media_type: 'Unsupported media type',
  malware_detected: 'The file holds malware and was not kept',
  rate_limited: 'Too many requests',
  unavailable: 'Service unavailable',
  scanner_unavailable: 'Uploads are paused: the malware scanner is unavailable, so no file can be accepted',
  internal: 'Internal error',
};

export function statusOf(code: ErrorCode): number {
  return STATUS[code];
}

function fromFastify(err: FastifyError): AppError | null {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new AppError('payload_too_large');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new AppError('unsupported_media_type', 'send the body as JSON with content-type: application/json');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new AppError('malformed_request', 'the body is not valid JSON');
    default:
      break;
  }
  if (err instanceof SyntaxError) return new AppError('malformed_request', 'the body is not valid JSON');
  if (typeof err.statusCode === 'number' && err.statusCode >= 400 && err.statusCode < 500) {
    return new AppError('malformed_request');
  }
  return null;
}

const UNAVAILABLE_PG = /^(08|57P0|53)/;

/**
 * Safety net for input the schemas let through but PostgreSQL refuses (a NUL byte, an
 * out-of-range number, a reference to a row that vanished): a client error, never a 500.
 */
function fromPostgres(err: unknown): AppError | null {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'string' || !/^[0-9A-Z]{5}$/.test(code)) return null;
  if (code === '23505') return new AppError('conflict');
  // A row-level security WITH CHECK refusal: the policy is the backstop of a check that should
  // have answered first, and it answers the same way.
  if (code === '42501') return new AppError('forbidden');
  if (code === '40P01' || code === '40001') return new AppError('unavailable', 'a concurrent change conflicted; retry');
  if (code === '23503') return new AppError('not_found');
  // Migration 031: a membership of an org that is being deleted.
  if (code === '55000') return new AppError('conflict', 'the organization is scheduled for deletion');
  if (code.startsWith('23')) return new AppError('validation_failed');
  if (code.startsWith('22')) return new AppError('malformed_request');
  return null;
}

function isDatabaseDown(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  if (typeof e.code === 'string' && UNAVAILABLE_PG.test(e.code)) return true;
  if (typeof e.code === 'string' && ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE'].includes(e.code)) return true;
  return typeof e.message === 'string' && /Connection terminated|connection timeout/i.test(e.message);
}

export function sendProblem(reply: FastifyReply, request: FastifyRequest, err: AppError): FastifyReply {
  const status = STATUS[err.code];
  const body: Record<string, unknown> = {
    type: `https://palisade.dev/problems/${err.code}`,
    title: TITLES[err.code],
    status,
    code: err.code,
    requestId: request.id,
  };
  if (err.detail) body.detail = err.detail;
  if (err.issues) body.errors = err.issues;
  if (err.extras?.ssoStart) body.ssoStart = err.extras.ssoStart;
  if (err.extras?.retryAfterSeconds !== undefined) void reply.header('retry-after', String(err.extras.retryAfterSeconds));
  return reply.code(status).type('application/problem+json').send(body);
}

export function errorHandler(err: unknown, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (err instanceof AppError) return sendProblem(reply, request, err);
  const mapped = fromFastify(err as FastifyError);
  if (mapped) return sendProblem(reply, request, mapped);
  const pgMapped = fromPostgres(err);
  if (pgMapped) {
    request.log.warn({ pgCode: (err as { code: string }).code }, 'database refused input');
    return sendProblem(reply, request, pgMapped);
  }
  if (isDatabaseDown(err)) {
    request.log.error({ err: { message: (err as Error).message } }, 'database unavailable');
    return sendProblem(reply, request, new AppError('unavailable'));
  }
  request.log.error({ err }, 'unhandled error');
  return sendProblem(reply, request, new AppError('internal'));
}
