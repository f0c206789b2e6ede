import { z } from 'zod';
import type { ErrorCode } from '../kernel/errors.js';
import { isAdminLevel } from '../kernel/permissions.js';
import { isMutation, orgScoped, projectScoped, type AnyRoute } from './route.js';

/**
 * What a route promises to answer: its success body (declared as zod beside its input, sent
 * through Fastify's compiled serializer, so a field the schema does not name never leaves) and
 * the problem codes it can answer, derived from its declaration plus the domain errors it names.
 */

/** JSON Schema of a zod schema as it is sent (io `output`). `target` draft-7 for Fastify's serializer. */
export function jsonSchemaOf(
  schema: z.ZodType,
  io: 'input' | 'output',
  target: 'draft-7' | 'draft-2020-12' = 'draft-2020-12',
): Record<string, unknown> {
  const s = z.toJSONSchema(schema, { io, target, unrepresentable: 'any' }) as Record<string, unknown>;
  delete s.$schema;
  return s;
}

/** The success status of a route (200 unless declared). */
export function successStatus(route: Pick<AnyRoute, 'status'>): number {
  return route.status ?? 200;
}

/** Codes every route can answer whatever it declares: its limiter, a database away, a bug. */
const ALWAYS: readonly ErrorCode[] = ['rate_limited', 'unavailable', 'internal'];

/**
 * Every problem code a route can answer: what the pipeline answers for its declaration
 * (authentication, org and project resolution, permission, step-up, validation, limits) and
 * the domain errors it declares in `errors`. In development and test the pipeline refuses a
 * handler that throws a code outside this set, so the list in the OpenAPI document stays true.
 */
export function problemCodesOf(route: AnyRoute): ErrorCode[] {
  const codes = new Set<ErrorCode>(ALWAYS);
  const s = route.schema;
  if (s.params || s.query || s.body) codes.add('validation_failed');
  if (isMutation(route.method) || route.rawBody) {
    codes.add('malformed_request').add('payload_too_large').add('unsupported_media_type');
  }
  if (route.auth.mode === 'session') {
    codes.add('unauthenticated').add('session_expired');
    if (isMutation(route.method)) codes.add('csrf_rejected');
  }
  if (route.auth.mode === 'key') codes.add('unauthenticated').add('origin_not_allowed');
  if (route.auth.mode !== 'public' && orgScoped(route)) {
    // conflict: the org is scheduled for deletion (served again if an owner restores it).
    codes.add('not_found').add('forbidden').add('mfa_enrollment_required').add('conflict');
    // The org's MFA requirement: a session not proven with its second factor steps up first.
    if (route.auth.mode === 'session') codes.add('step_up_required');
    if (route.permission !== 'self' && route.permission !== 'none' && isAdminLevel(route.permission)) codes.add('ip_not_allowed');
  }
  if (projectScoped(route)) codes.add('not_found');
  // An owner outside the admin IP allowlist steps up on the routes that let owners recover.
  if (route.stepUp || route.ownerRecovery) codes.add('step_up_required');
  for (const c of route.errors ?? []) codes.add(c);
  return [...codes];
}
