import type { FastifyReply } from 'fastify';
import type { z } from 'zod';
import type { RequestContext } from '../kernel/context.js';
import type { Permission } from '../kernel/permissions.js';

/**
 * Every route is one definition that states who may call it, with what permission, under
 * which rate-limit policy and which audit action. The server refuses to start when a route
 * lacks any of it (see assertRouteComplete).
 */

export type AuthMode =
  | { mode: 'public'; reason: string }
  /** A signed-in user; `orgId`/`projectId` path params are resolved against their membership. */
  | { mode: 'session' };

export const RATE_LIMIT_POLICIES = [
  'login',
  'register',
  'password-reset',
  'invitation-accept',
  'mfa-verify',
  'probe',
  'authenticated',
] as const;
export type RateLimitPolicy = (typeof RATE_LIMIT_POLICIES)[number];

/** `self`: any signed-in user acting on their own account; needs no org permission. */
export type RoutePermission = Permission | 'self' | 'none';

/** `or`: other actions a successful call may append instead (a login that stops at its second factor). */
export type AuditDecl = { action: string; or?: readonly string[] } | { none: string };

/** A fresh proof of identity (step-up, "sudo mode") counts this long for sensitive routes. */
export const STEP_UP_SECONDS = 600;

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
  ctx: RequestContext;
  reply: FastifyReply;
}

type Schema = z.ZodType;
type Out<S> = S extends z.ZodType ? z.output<S> : undefined;

export interface RouteSchemas {
  params?: Schema;
  query?: Schema;
  body?: Schema;
}

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
  /** Status of a successful answer (200 unless stated). */
  status?: 200 | 201 | 202 | 204;
  /** Example body the authorization matrix sends; must pass `schema.body`. */
  example?: () => unknown;
  handler(input: RouteInput<Out<S['params']>, Out<S['query']>, Out<S['body']>>): Promise<unknown>;
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
  if (!route.audit) fail('no audit declaration');
  if (route.audit && 'none' in route.audit) {
    if (!route.audit.none.trim()) fail('audit "none" without a reason');
    if (route.method && isMutation(route.method) && route.auth?.mode !== 'public') {
      fail('state-changing routes must declare an audit action');
    }
  }
  if (route.stepUp && route.auth?.mode !== 'session') fail('step-up needs a signed-in caller');
  if (!route.summary) fail('no summary');
  if (!route.handler) fail('no handler');
}
