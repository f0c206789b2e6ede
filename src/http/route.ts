import type { FastifyReply } from 'fastify';
import type { z } from 'zod';
import type { AuditAction } from '../kernel/audit-actions.js';
import type { RequestContext } from '../kernel/context.js';
import type { ErrorCode } from '../kernel/errors.js';
import { API_KEY_PERMISSIONS, type Permission } from '../kernel/permissions.js';
import type { UploadSource } from './upload.js';

/**
 * Every route is one definition that states who may call it, with what permission, under
 * which rate-limit policy and which audit action. The server refuses to start when a route
 * lacks any of it (see assertRouteComplete).
 */

export type AuthMode =
  | { mode: 'public'; reason: string }
  /** A signed-in user; `orgId`/`projectId` path params are resolved against their membership. */
  | { mode: 'session' }
  /**
   * An API key (`Authorization: Bearer pal_…`) of the org in the path; never a cookie. Served
   * under API_PREFIX in a context of its own.
   */
  | { mode: 'key' };

/** Where routes for API keys live; console (session) routes live under /api. */
export const API_PREFIX = '/v1';

export const RATE_LIMIT_POLICIES = [
  'login',
  'register',
  'password-reset',
  'magic-link',
  'email-verify',
  'invitation-accept',
  'mfa-verify',
  // Not for routes: public mfa-verify routes are also counted per client address under it (the
  // pipeline's publicAddressPolicy), since their own policy counts per pending sign-in.
  'mfa-verify-address',
  'probe',
  'authenticated',
  'inbound',
  'audit-verify',
  'outbound-test',
] as const;
export type RateLimitPolicy = (typeof RATE_LIMIT_POLICIES)[number];

/** `self`: any signed-in user acting on their own account; needs no org permission. */
export type RoutePermission = Permission | 'self' | 'none';

/** `or`: other actions a successful call may append instead (a login that stops at its second factor). */
export type AuditDecl = { action: AuditAction; or?: readonly AuditAction[] } | { none: string };

export { STEP_UP_SECONDS } from '../kernel/context.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  ctx: RequestContext;
  reply: FastifyReply;
  /**
   * Counts this call under the route's policy against the challenge the body named (a pending
   * sign-in), once the handler has found it: a made-up token costs its caller's address budget
   * and creates no counter of its own. Throws rate_limited (429) when over.
   */
  countChallenge(challengeId: string): Promise<void>;
  /**
   * Routes declaring `accountLimitCapsMail`: false when the mail for the body's email is over its
   * cap (per account and sender's address, and per account); the handler answers as usual and
   * sends no mail. Always true elsewhere.
   */
  mailAllowed: boolean;
  /** Routes declaring `upload`: the multipart body's one file, as a stream. Null elsewhere. */
  upload: UploadSource | null;
}

type Schema = z.ZodType;
type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteSchemas {
  params?: Schema;
  query?: Schema;
  body?: Schema;
  /**
   * The success body. The reply is serialized through it (Fastify's compiled serializer), so a
   * field it does not name (a hash, a sealed blob) never leaves; the handler's return type is
   * checked against it, and in development and test so is the value returned.
   */
  response?: Schema;
}

/** What a handler returns: the declared success body, as the handler builds it (before serialization). */
type Sent<S> = S extends { response: infer R extends z.ZodType } ? z.input<R> : unknown;

export interface RouteDef<S extends RouteSchemas = RouteSchemas> {
  method: Method;
  url: string;
  summary: string;
  tags: string[];
  auth: AuthMode;
  permission: RoutePermission;
  rateLimit: RateLimitPolicy;
  audit: AuditDecl;
  schema: S;
  /**
   * Sensitive: needs a fresh proof of identity within STEP_UP_SECONDS (a second factor; a
   * password only for an account that has none).
   */
  stepUp?: true;
  /**
   * Owners keep this route from outside the org's admin IP allowlist (with a fresh step-up):
   * what they need to change the list and to remove a rogue admin and see what it did. An admin
   * may have saved a list that excludes every owner; the list must never take those away.
   */
  ownerRecovery?: true;
  /**
   * Still served while the org is scheduled for deletion (its status, the owner's restore):
   * every other route of such an org answers `conflict`, saying when it will be purged.
   */
  whileDeleting?: true;
  /**
   * Also served to API keys: the same definition is mounted a second time under API_PREFIX
   * with auth mode `key` (apiMirrors). Only for org-scoped routes whose permission a key may hold.
   */
  api?: true;
  /**
   * The handler receives the body as the exact string sent (signature checks need the bytes);
   * it parses it itself. Public routes only.
   */
  rawBody?: true;
  /**
   * A file upload (issue 16): the body is multipart/form-data holding one file, which the handler
   * reads as it streams in (RouteInput.upload); no body schema. Mounted in a context of its own
   * that parses no other body type.
   */
  upload?: true;
  /**
   * A form another site's page posts in the user's browser by design (a SAML IdP's POST to the
   * Assertion Consumer Service): the CSRF Origin check lets it through, and it may answer with a
   * redirect. The reason says what credential the body carries instead. Public raw-body POSTs only.
   */
  crossSiteForm?: string;
  /**
   * Public routes that answer the same for every email and whose only effect for the account is
   * a mail (reset request, verification resend, registration): the per-account count caps the
   * mail instead of refusing, so nobody can spend another person's budget and learn nothing
   * from the answer (the handler reads `mailAllowed`). Review R5 finding B.
   */
  accountLimitCapsMail?: true;
  /**
   * Status of a successful answer (200 unless stated). 302: a browser navigation (single sign-on)
   * answered with a redirect; the handler returns `{ location }` (its response schema) and the
   * reply carries it as the Location header, with no body.
   */
  status?: 200 | 201 | 202 | 204 | 302;
  /** Example body the authorization matrix sends; must pass `schema.body`. */
  example?: () => unknown;
  /**
   * Problem codes the handler's services can throw beyond what the declaration already implies
   * (see problemCodesOf): a 409 conflict, a 422 weak password… Listed in the OpenAPI document.
   */
  errors?: readonly ErrorCode[];
  handler(input: RouteInput<Out<S['params']>, Out<S['query']>, Out<S['body']>>): Promise<Sent<S>>;
}

// The heterogeneous route table erases each route's own schema types once defined.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyRoute = RouteDef<any>;

export function defineRoute<S extends RouteSchemas>(def: RouteDef<S>): AnyRoute {
  return def as AnyRoute;
}

export function isMutation(method: Method): boolean {
  return method !== 'GET';
}

export function orgScoped(route: Pick<RouteDef, 'url'>): boolean {
  return route.url.includes(':orgId');
}

export function projectScoped(route: Pick<RouteDef, 'url'>): boolean {
  return route.url.includes(':projectId');
}

/** Throws when a route misses a declaration; called for every route before the server listens. */
export function assertRouteComplete(route: Partial<RouteDef> | undefined, where: string): void {
  const fail = (why: string): never => {
    throw new Error(`route ${where} is incomplete: ${why}`);
  };
  if (!route) return fail('not built with defineRoute');
  if (!route.auth) fail('no auth mode');
  if (route.auth?.mode === 'public' && !route.auth.reason?.trim()) fail('public without a written reason');
  if (!route.permission) fail('no permission');
  if (route.auth?.mode === 'public' && route.permission !== 'none') fail('public routes carry permission "none"');
  if (route.auth?.mode !== 'public' && route.permission === 'none') fail('authenticated routes need a permission or "self"');
  if (route.url && orgScoped({ url: route.url }) && (route.permission === 'self' || route.permission === 'none')) {
    fail('org-scoped routes need a catalogue permission');
  }
  if (!route.rateLimit || !(RATE_LIMIT_POLICIES as readonly string[]).includes(route.rateLimit)) fail('no known rate-limit policy');
  if (route.rateLimit === 'mfa-verify-address') fail('mfa-verify-address is counted by the pipeline, not declared by a route');
  // A signed-in route has no account key to cap, and a 200 answer would let the cap show.
  if (route.accountLimitCapsMail && (route.auth?.mode !== 'public' || route.status !== 202)) fail('accountLimitCapsMail is for public routes answering 202');
  if (!route.audit) fail('no audit declaration');
  if (route.audit && 'none' in route.audit) {
    if (!route.audit.none.trim()) fail('audit "none" without a reason');
    if (route.method && isMutation(route.method) && route.auth?.mode !== 'public') {
      fail('state-changing routes must declare an audit action');
    }
  }
  if (route.stepUp && route.auth?.mode !== 'session') fail('step-up needs a signed-in caller');
  if (route.ownerRecovery && (route.auth?.mode !== 'session' || !route.url || !orgScoped({ url: route.url }))) {
    fail('owner recovery is for org-scoped session routes (an owner signed in, stepping up)');
  }
  const keyReachable = route.auth?.mode === 'key' || route.api;
  if (route.api && route.auth?.mode !== 'session') fail('only session routes are mirrored to API keys');
  if (keyReachable && route.stepUp) fail('a key cannot step up: sensitive routes stay with sessions');
  if (keyReachable && route.url && !orgScoped({ url: route.url })) fail('key routes are org-scoped (the key is looked up in that org)');
  if (keyReachable && !(API_KEY_PERMISSIONS as readonly string[]).includes(String(route.permission))) {
    fail(`permission ${String(route.permission)} is not one an API key may hold`);
  }
  if (route.auth?.mode === 'key' && route.url && !route.url.startsWith(`${API_PREFIX}/`)) fail(`key routes live under ${API_PREFIX}`);
  if (route.auth?.mode !== 'key' && route.url?.startsWith(`${API_PREFIX}/`)) fail(`only key routes live under ${API_PREFIX}`);
  if (route.rawBody && route.auth?.mode !== 'public') fail('raw bodies are for provider-signed public routes');
  if (route.upload && (route.method !== 'POST' || route.auth?.mode === 'public' || route.schema?.body || route.rawBody)) {
    fail('uploads are signed-in POSTs whose body is the multipart file (no body schema)');
  }
  // Declare what leaves (issue 11): the success body, and the problem codes beyond the derived ones.
  if (route.status === 204 && route.schema?.response) fail('a 204 answer has no body to declare');
  if (route.status !== 204 && !route.schema?.response) fail('no response schema (schema.response)');
  if (route.crossSiteForm !== undefined && (!route.crossSiteForm.trim() || route.method !== 'POST' || route.auth?.mode !== 'public' || !route.rawBody)) {
    fail('a cross-site form is a public raw-body POST with a written reason');
  }
  if (route.status === 302 && ((route.method !== 'GET' && !route.crossSiteForm) || route.auth?.mode !== 'public')) {
    fail('redirects are for public browser navigations (GET, or a declared cross-site form POST)');
  }
  if (!route.errors) fail('no errors declaration (the domain codes it can answer, or [])');
  if (!route.summary) fail('no summary');
  if (!route.handler) fail('no handler');
}

/**
 * The key-facing copies of routes declared `api: true`: same permission, schema, audit and
 * handler, under API_PREFIX, authenticated by key only.
 */
export function apiMirrors(routes: readonly AnyRoute[]): AnyRoute[] {
  return routes
    .filter((r) => r.api)
    .map((r) => ({ ...r, url: r.url.replace(/^\/api\//, `${API_PREFIX}/`), auth: { mode: 'key' as const }, api: undefined, ownerRecovery: undefined }));
}
