import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { z } from 'zod';
import type { Actor, OrgAccess, RequestContext } from '../kernel/context.js';
import { AppError, InvariantError } from '../kernel/errors.js';
import { isUuid } from '../kernel/ids.js';
import { ipInList, rateLimitAllocation, rateLimitSubject } from '../kernel/ip.js';
import { isAdminLevel, isOrgWide, withoutAdminLevel } from '../kernel/permissions.js';
import { rateLimitHeaders, type RateLimitDecision, type RateLimiter } from './rate-limit/index.js';
import { jsonSchemaOf, problemCodesOf, successStatus } from './contract.js';
import { uploadSource, type UploadPace } from './upload.js';
import { API_PREFIX, assertRouteComplete, STEP_UP_SECONDS, isMutation, orgScoped, projectScoped, type AnyRoute, type RateLimitPolicy } from './route.js';

/** What the pipeline needs from the domains; app.ts passes these in. */
export interface Authenticators {
  /**
   * Verifies the session cookie; may set a rotated cookie on the reply. Null when absent or
   * invalid. With `orgId`, also the caller's standing there, derived from current roles (null
   * when not a member).
   */
  session(
    request: FastifyRequest,
    reply: FastifyReply,
    ctx: RequestContext,
    orgId: string | null,
  ): Promise<{ actor: Actor; access: OrgAccess | null } | null>;
  /**
   * Verifies an API key (`Authorization: Bearer …`) for the org in the path: checksum first,
   * then one lookup. Null when absent or not a live key of that org. Never reads cookies.
   */
  key(request: FastifyRequest, ctx: RequestContext, orgId: string | null): Promise<{ actor: Actor; access: OrgAccess } | null>;
  /**
   * Records a refused request in the audit trail (best effort, own transaction). The domains'
   * `privilege_escalation` refusals (acting beyond what one holds: granting, acting on an owner
   * or on their credentials) are recorded here too.
   */
  denied(ctx: RequestContext, route: AnyRoute, reason: 'not_member' | 'permission' | 'project' | 'ip' | 'privilege_escalation'): Promise<void>;
  /** Runs a read request on one connection and transaction (Database.requestTransaction). */
  readScope<T>(fn: () => Promise<T>): Promise<T>;
}

declare module 'fastify' {
  interface FastifyRequest {
    ctx: RequestContext;
  }
  interface FastifyContextConfig {
    route?: AnyRoute;
  }
}

function issuesOf(err: z.ZodError, where: string) {
  return err.issues.slice(0, 20).map((i) => ({ path: [where, ...i.path.map(String)].join('.'), message: i.message }));
}

function parsePart(schema: z.ZodType | undefined, value: unknown, where: string): unknown {
  if (!schema) return undefined;
  const res = schema.safeParse(value ?? (where === 'body' ? undefined : {}));
  if (!res.success) throw new AppError('validation_failed', `invalid ${where}`, issuesOf(res.error, where));
  return res.data;
}

export interface PipelineOptions {
  auth: Authenticators;
  /** Fail the request (500) when a mutation does not append its declared audit action. */
  strictAudit: boolean;
  now: () => Date;
  /** Null only in tests of the route table itself. */
  limiter: RateLimiter | null;
  onLimited?: (policy: string) => void;
  /** Upload routes: the pace a body must keep (http/upload.ts); its defaults when absent. */
  uploadPace?: UploadPace;
}

/** One counter to hit: a policy and the parts of its key. */
interface LimitKey {
  policy: RateLimitPolicy;
  parts: readonly string[];
  /** Multiplies the policy's limit (a key shared by many clients); 1 unless stated. */
  scale?: number;
  /**
   * False for keys whose count is other people's business (an account, an IPv6 /48): their
   * RateLimit-* headers would tell a caller how often others asked for that email or from that
   * block. A refusal by such a key says Retry-After only. Review R5 finding C.
   */
  shown: boolean;
}

/**
 * One IPv6 /48 (65,536 /64 subjects, a free tunnel-broker allocation) is counted as a whole too,
 * with 16 times the policy's limit, before its /64: without it, one allocation minted tens of
 * thousands of refusing counters and filled a policy's memory store, which then refused every
 * new client for up to an hour (review R5 finding A). 16 a /48 leaves a site's subscribers room
 * to share it; a /64 over its own limit spends the /48's budget as well (it is counted first).
 */
const ALLOCATION_SCALE = 16;

/** Mail per account from every address together, as a multiple of the per-(account, address) limit. */
const ACCOUNT_MAIL_SCALE = 4;

/** The most constrained decision seen for one request, across the limit checks it went through. */
interface Shown {
  decision: RateLimitDecision | null;
}

/**
 * Every public call is counted per client address (by rateLimitSubject: an IPv6 /64 counts as one
 * address, kernel/ip.ts) before anything else, under the route's policy, except where that policy
 * counts something else: mfa-verify counts per pending sign-in, so its public routes are counted
 * per address under mfa-verify-address (wider: an office behind one address signs in together).
 * Without this, each made-up MFA token was a free database lookup and a fresh counter
 * (review R4 finding 2).
 */
function publicAddressKeys(route: AnyRoute, ip: string): LimitKey[] {
  const policy: RateLimitPolicy = route.rateLimit === 'mfa-verify' ? 'mfa-verify-address' : route.rateLimit;
  const allocation = rateLimitAllocation(ip);
  const address: LimitKey = { policy, parts: ['ip', rateLimitSubject(ip)], shown: true };
  return allocation ? [{ policy, parts: ['ip-allocation', allocation], scale: ALLOCATION_SCALE, shown: false }, address] : [address];
}

/**
 * Per account as well as per address: a distributed guesser gets no more tries on one account
 * than a single address would. Made from the validated body only (a route whose schema has no
 * email field gets no account key, whatever the raw body carries), after the address was admitted.
 */
function accountEmail(body: unknown): string | null {
  if (typeof body !== 'object' || body === null) return null;
  const email = (body as Record<string, unknown>).email;
  if (typeof email !== 'string') return null;
  return email.trim().toLowerCase().slice(0, 254);
}

/**
 * Mail for one account (routes with `accountLimitCapsMail`): the policy's limit per account and
 * sender's allocation (an IPv6 /48, else the address), then 4 times that per account from every
 * address. Someone asking for another person's mail spends their own budget first: the victim,
 * from their own address, still gets their reset mail unless the asker brings more than
 * ACCOUNT_MAIL_SCALE allocations (review R5 finding B).
 */
function accountMailKeys(route: AnyRoute, email: string, ip: string): LimitKey[] {
  const from = rateLimitAllocation(ip) ?? rateLimitSubject(ip);
  return [
    { policy: route.rateLimit, parts: ['account-mail', email, from], shown: false },
    { policy: route.rateLimit, parts: ['account-mail', email], scale: ACCOUNT_MAIL_SCALE, shown: false },
  ];
}

/** Counts each key in turn until one is over; true when all admitted. Refuses nothing itself. */
async function withinLimits(opts: PipelineOptions, keys: readonly LimitKey[]): Promise<boolean> {
  if (!opts.limiter) return true;
  return (await opts.limiter.hitAll(keys)).every((d) => d.allowed);
}

/** Counts the request for each key (in one call to the limiter); 429 with Retry-After when one is over. */
async function enforceLimits(reply: FastifyReply, opts: PipelineOptions, keys: readonly LimitKey[], shown: Shown): Promise<void> {
  if (!opts.limiter) return;
  // The headers describe the most constrained key shown to this caller, not the last one
  // counted: a client pacing itself on RateLimit-Remaining was told "2 left" while its address
  // had none, and got a 429 next. Keys counting others (an account) are never shown.
  const decisions = await opts.limiter.hitAll(keys);
  for (const [i, d] of decisions.entries()) {
    const key = keys[i];
    if (!key) break;
    const before = shown.decision;
    if (key.shown && (!before || !d.allowed || (before.allowed && d.remaining < before.remaining))) shown.decision = d;
    if (!d.allowed) {
      opts.onLimited?.(key.policy);
      const retry = String(Math.max(1, d.retryAfterSeconds));
      if (!key.shown) {
        // Only when to come back: what is left on another person's key is not this caller's to see.
        reply.removeHeader('RateLimit-Limit').removeHeader('RateLimit-Remaining').removeHeader('RateLimit-Reset');
        reply.header('Retry-After', retry);
      } else {
        for (const [k, v] of Object.entries(rateLimitHeaders(d))) reply.header(k, v);
        reply.header('Retry-After', retry);
      }
      throw new AppError('rate_limited', `retry in ${retry} s`);
    }
  }
  const d = shown.decision;
  if (!d) return;
  for (const [k, v] of Object.entries(rateLimitHeaders(d))) reply.header(k, v);
}

/**
 * Addresses whose failed key authentications went over the `probe` policy, until when. The
 * checksum is public, so well-formed unknown tokens are free to mint and each costs a lookup
 * (a forged session cookie fails its HMAC first): past the limit an address is refused before
 * the lookup. The count is shared (the limiter); the block is per process, learnt by each
 * instance at the address's next failure there.
 */
const keyFailureBlocks = new WeakMap<PipelineOptions, Map<string, number>>();

async function verifyKey(request: FastifyRequest, ctx: RequestContext, orgId: string | null, opts: PipelineOptions) {
  let blocks = keyFailureBlocks.get(opts);
  if (!blocks) keyFailureBlocks.set(opts, (blocks = new Map()));
  const subject = rateLimitSubject(ctx.ip);
  const now = opts.now().getTime();
  const until = blocks.get(subject);
  if (until !== undefined) {
    if (until > now) throw new AppError('rate_limited', `too many failed key authentications: retry in ${Math.ceil((until - now) / 1000)} s`);
    blocks.delete(subject);
  }
  const verified = await opts.auth.key(request, ctx, orgId);
  if (!verified && request.headers.authorization && opts.limiter) {
    const d = await opts.limiter.hit('probe', ['key-failure', subject]);
    if (!d.allowed) {
      if (blocks.size > 10_000) blocks.clear();
      blocks.set(subject, now + Math.max(1, d.retryAfterSeconds) * 1000);
    }
  }
  return verified;
}

/**
 * Who a signed-in request is counted against. A person: per user. A secret key: per key and
 * per creator, so that a member's many keys share one budget. A publishable key (public, used
 * by an org's visitors): per key and client address, so that someone who copies it from a page
 * spends their own budget, not the visitors'.
 */
function actorLimitKeys(route: AnyRoute, actor: Actor, ip: string): LimitKey[] {
  const keyed = (parts: string[]): LimitKey => ({ policy: route.rateLimit, parts, shown: true });
  if (actor.type === 'api_key') {
    return actor.kind === 'publishable'
      ? [keyed(['key', actor.keyId, rateLimitSubject(ip)])]
      : [keyed(['key', actor.keyId]), keyed(['key-creator', actor.createdBy])];
  }
  return actor.type === 'user' ? [keyed(['user', actor.userId])] : [];
}

function assertSteppedUp(actor: Actor, now: Date, why?: string): void {
  const at = actor.type === 'user' ? actor.session.steppedUpAt : null;
  if (!at || now.getTime() - at.getTime() > STEP_UP_SECONDS * 1000) {
    throw new AppError('step_up_required', `${why ? `${why}: ` : ''}POST /api/auth/step-up (or /api/auth/step-up/passkey), then retry within 10 minutes`);
  }
}

/** What authorization decided beyond yes: the request needs a fresh step-up it would not otherwise. */
type Authorized = { stepUp: string | null };

/**
 * What a refused credential is told. The same words for every way a credential can fail
 * (unknown, revoked, expired, another org's), so nothing is learnt about a key or a session,
 * only what to send and where keys are accepted.
 */
function unauthenticatedDetail(route: AnyRoute, request: FastifyRequest): string {
  const bearer = /^Bearer pal_/i.test(String(request.headers.authorization ?? ''));
  if (route.auth.mode === 'session') {
    if (bearer) return `API keys work on ${API_PREFIX}/… routes; this console route needs a session`;
    // A session cookie was sent but is no longer valid: ended, expired, or replaced by a rotation
    // (a client that keeps the old cookie after a rotation lands here).
    return /(^|;\s*)(__Host-)?palisade_session=/.test(String(request.headers.cookie ?? ''))
      ? 'your session has ended or was replaced (sessions rotate after sign-in changes): keep the newest cookie, or sign in again'
      : 'sign in first: this route needs a session cookie';
  }
  return bearer
    ? 'the API key is not valid for this organization: unknown, revoked or expired'
    : 'send an API key of this organization: Authorization: Bearer pal_sk_…';
}

async function authorize(route: AnyRoute, request: FastifyRequest, reply: FastifyReply, opts: PipelineOptions, shown: Shown): Promise<Authorized> {
  const ctx = request.ctx;
  const done: Authorized = { stepUp: null };
  if (route.auth.mode === 'public') return done;
  const params = request.params as Record<string, unknown>;
  const orgId = orgScoped(route) && isUuid(params.orgId) ? params.orgId : null;
  // Each context has one credential: console routes read only the cookie, key routes only the
  // Authorization header, so neither can stand in for the other.
  const verified = route.auth.mode === 'key' ? await verifyKey(request, ctx, orgId, opts) : await opts.auth.session(request, reply, ctx, orgId);
  const expected = route.auth.mode === 'key' ? 'api_key' : 'user';
  if (!verified || verified.actor.type !== expected) {
    // Says nothing about the key (it is not looked at here), only where keys are accepted.
    throw new AppError('unauthenticated', unauthenticatedDetail(route, request));
  }
  ctx.actor = verified.actor;
  // Counted before anything can refuse: a refusal is audited (a write to the org's chain), so
  // refused requests must spend the caller's budget too, or a publishable key (public by
  // design) would let anyone append to an org's audit trail without limit.
  await enforceLimits(reply, opts, actorLimitKeys(route, verified.actor, ctx.ip), shown);
  if (!orgScoped(route)) return done;
  if (!orgId) throw new AppError('not_found', 'organizations are addressed by id, not slug: GET /api/me lists yours');
  const access = verified.access;
  if (!access) {
    await opts.auth.denied(ctx, route, 'not_member');
    throw new AppError('not_found');
  }
  ctx.org = access;
  if (access.purgeAfter && !route.whileDeleting) {
    throw new AppError('conflict', `this organization is scheduled for deletion on ${access.purgeAfter.toISOString()}: ` +
      `until then an owner can restore it (POST /api/orgs/${access.orgId}/restore); nothing else in it can be used`);
  }
  if (route.permission === 'self' || route.permission === 'none') throw new InvariantError('org route without permission');
  if (!access.permissions.has(route.permission)) {
    await opts.auth.denied(ctx, route, 'permission');
    const why = access.projectIds !== null && isOrgWide(route.permission) ? ', an org-wide permission, which access restricted to projects never holds' : '';
    throw new AppError('forbidden', `requires ${route.permission}${why}`);
  }
  // Checked on every admin-level request, not only at sign-in: a cookie carried elsewhere stops here.
  const allowlist = access.adminIpAllowlist ?? [];
  if (allowlist.length > 0 && !ipInList(ctx.ip, allowlist)) {
    const owner = access.permissions.has('owners:manage');
    if (route.ownerRecovery && owner) {
      // An owner is never locked out of changing the list, nor of removing a rogue admin and
      // seeing what it did (an admin may have saved a list that excludes every owner). The list's
      // defence against a cookie carried elsewhere becomes a fresh proof of identity.
      done.stepUp = 'from outside the admin IP allowlist an owner confirms it is them';
    } else if (isAdminLevel(route.permission)) {
      await opts.auth.denied(ctx, route, 'ip');
      throw new AppError('ip_not_allowed', owner ? `owners can change the list from any address: PATCH /api/orgs/${access.orgId}/settings after a step-up` : undefined);
    } else {
      // From outside the list no admin-level permission is held, also where a member-level route
      // lets its holders do more (keys:own routes reach every member's keys with keys:manage).
      ctx.org = { ...access, permissions: withoutAdminLevel(access.permissions) };
    }
  }
  if (projectScoped(route)) {
    const projectId = params.projectId;
    if (!isUuid(projectId)) throw new AppError('not_found');
    if (access.projectIds !== null && !access.projectIds.includes(projectId)) {
      await opts.auth.denied(ctx, route, 'project');
      throw new AppError('not_found');
    }
  }
  return done;
}

/**
 * UUIDs are case-insensitive on input, but downstream code compares them as text (project
 * scope, the current session) and hashes them into the audit chain, where PostgreSQL hands back
 * the canonical lower-case form: an upper-case id in a URL would make verification report
 * tampering. Path ids are therefore lower-cased before anything reads them.
 */
function canonicalizeIds(params: Record<string, unknown> | null | undefined): void {
  if (!params) return;
  for (const [key, value] of Object.entries(params)) if (isUuid(value)) params[key] = value.toLowerCase();
}

/** Largest provider-signed body accepted (inbound webhooks). */
export const RAW_BODY_LIMIT = 256 * 1024;

/**
 * Routes declared `rawBody`: every content type reaches the handler as the string sent, so a
 * signature is checked over the exact bytes. Call inside the context that mounts them.
 */
export function keepRawBodies(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => done(null, body));
}

export function mountRoutes(app: FastifyInstance, routes: readonly AnyRoute[], opts: PipelineOptions): void {
  for (const route of routes) {
    assertRouteComplete(route, `${route.method} ${route.url}`);
    app.route({
      method: route.method,
      url: route.url,
      config: { route },
      // Provider events (inbound webhooks) run larger than console bodies.
      ...(route.rawBody ? { bodyLimit: RAW_BODY_LIMIT } : {}),
      ...(route.schema.response && route.status !== 302 ? { schema: { response: { [successStatus(route)]: jsonSchemaOf(route.schema.response, 'output', 'draft-7') } } } : {}),
      handler: async (request, reply) => {
        canonicalizeIds(request.params as Record<string, unknown>);
        const run = async () => {
          const shown: Shown = { decision: null };
          if (route.auth.mode === 'public') await enforceLimits(reply, opts, publicAddressKeys(route, request.ctx.ip), shown);
          // Signed-in callers are counted per user or key inside authorize, before any refusal.
          const authorized = await authorize(route, request, reply, opts, shown);
          if (route.stepUp || authorized.stepUp) assertSteppedUp(request.ctx.actor, opts.now(), authorized.stepUp ?? undefined);
          const params = parsePart(route.schema.params, request.params, 'params');
          const query = parsePart(route.schema.query, request.query, 'query');
          const body = parsePart(route.schema.body, request.body, 'body');
          const email = route.auth.mode === 'public' ? accountEmail(body) : null;
          let mailAllowed = true;
          if (email !== null && route.accountLimitCapsMail) mailAllowed = await withinLimits(opts, accountMailKeys(route, email, request.ctx.ip));
          else if (email !== null) await enforceLimits(reply, opts, [{ policy: route.rateLimit, parts: ['account', email], shown: false }], shown);
          // The pending sign-in is known only to whoever holds its token: its count is theirs to see.
          const countChallenge = (challengeId: string) =>
            enforceLimits(reply, opts, [{ policy: route.rateLimit, parts: ['challenge', challengeId], shown: true }], shown);
          try {
            const upload = route.upload ? uploadSource(request, opts.uploadPace) : null;
            return await route.handler({ params, query, body, ctx: request.ctx, reply, countChallenge, mailAllowed, upload });
          } catch (err) {
            // An attempt to act beyond one's rights is evidence, like the pipeline's own refusals
            // (a domain's ip_not_allowed: an owner outside the admin IP allowlist changing more than the list).
            if (err instanceof AppError && err.code === 'privilege_escalation') await opts.auth.denied(request.ctx, route, 'privilege_escalation');
            if (err instanceof AppError && err.code === 'ip_not_allowed') await opts.auth.denied(request.ctx, route, 'ip');
            throw err;
          }
        };
        const checked = opts.strictAudit ? () => keepsContract(route, run) : run;
        // A signed-in read keeps one transaction from authentication to its query; a mutation's
        // transactions stay its own (its change and audit event commit or fail together).
        const result = route.auth.mode !== 'public' && !isMutation(route.method) ? await opts.auth.readScope(checked) : await checked();
        const declared = 'action' in route.audit ? [route.audit.action, ...(route.audit.or ?? [])] : [];
        if (isMutation(route.method) && declared.length > 0 && !declared.some((a) => request.ctx.audited.includes(a))) {
          const msg = `${route.method} ${route.url} did not append its audit action ${declared.join(' or ')}`;
          if (opts.strictAudit) throw new InvariantError(msg);
          request.log.error(msg);
        }
        if (reply.sent) return reply;
        const status = route.status ?? 200;
        if (status === 204) return reply.code(204).send();
        // The browser follows it; nothing of the flow may be cached on the way.
        if (status === 302) return reply.code(302).header('location', (result as { location: string }).location).header('cache-control', 'no-store').send();
        return reply.code(status).send(result ?? {});
      },
    });
  }
}

/**
 * Development and test only: a handler must answer what its route declares (the success body
 * and the problem codes of problemCodesOf), or the request fails loudly, so the OpenAPI
 * document the clients are generated from cannot drift from what the server does.
 */
async function keepsContract(route: AnyRoute, run: () => Promise<unknown>): Promise<unknown> {
  let result: unknown;
  try {
    result = await run();
  } catch (err) {
    if (err instanceof AppError && !problemCodesOf(route).includes(err.code)) {
      throw new InvariantError(`${route.method} ${route.url} answered ${err.code}, which it does not declare`);
    }
    throw err;
  }
  if (route.schema.response && !(result && typeof result === 'object' && 'sent' in result)) {
    const parsed = (route.schema.response as z.ZodType).safeParse(result);
    if (!parsed.success) {
      const where = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      throw new InvariantError(`${route.method} ${route.url} returned a body its response schema refuses (${where})`);
    }
  }
  return result;
}

export function isStateChanging(method: string): boolean {
  return !['GET', 'HEAD', 'OPTIONS'].includes(method);
}
