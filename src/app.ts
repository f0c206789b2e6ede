import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config/index.js';
import { Keyring } from './crypto/index.js';
import type { Database, Tx } from './db/database.js';
import type { RequestContext } from './kernel/context.js';
import type { Clock } from './kernel/clock.js';
import { SYSTEM_ORG_ID } from './kernel/ids.js';
import { buildOpenApi } from './http/openapi.js';
import { keepRawBodies, mountRoutes, type Authenticators } from './http/pipeline.js';
import { apiMirrors, type AnyRoute } from './http/route.js';
import { createHttpServer } from './http/server.js';
import { createRateLimiter, type PolicyTable } from './http/rate-limit/index.js';
import { Metrics } from './http/metrics.js';
import { apiKeyRoutes, createApiKeyService, createKeyUsage } from './domains/api-keys/index.js';
import { createWebhookService, createWebhookTransport, createWebhookWorker, outboxStatements, webhookRoutes } from './domains/webhooks/index.js';
import { assetRoutes, createAssetService } from './domains/assets/index.js';
import { auditRoutes, chainKeysFrom, createAuditReader, createAuditWriter, createCheckpointer } from './domains/audit/index.js';
import { createIdentityService, createLockout, createMfaService, createPasskeyService, identityRoutes, passkeyRoutes } from './domains/identity/index.js';
import { createInboundService, inboundRoutes } from './domains/inbound/index.js';
import { createSealer } from './domains/keys/index.js';
import { createOutboxMail } from './domains/mail/index.js';
import { opsRoutes } from './domains/ops/routes.js';
import { createSessionService, mfaRoutes, passkeySessionRoutes, sessionRoutes, setSessionCookie, type CookieSettings } from './domains/sessions/index.js';
import {
  createInvitationService,
  createMemberService,
  createOrgService,
  createProjectService,
  createRoleService,
  tenancyRoutes,
} from './domains/tenancy/index.js';

export type AppConfig = Pick<
  Config,
  | 'env' | 'publicOrigin' | 'allowedOrigins' | 'corsOrigins' | 'trustedProxies' | 'keks' | 'sessionSecret' | 'insecureLocalhostCookies' | 'session'
  | 'lockout' | 'redisUrl' | 'rateLimits' | 'webauthn' | 'webhooks' | 'auditCheckpoints'
>;

export interface AppDeps {
  config: AppConfig;
  db: Database;
  clock: Clock;
  logger: Logger;
  /** Counters the in-memory rate limiter keeps per policy (its default unless a test floods a smaller store). */
  memoryKeysPerPolicy?: number;
}

export const VERSION = '0.1.0';

export function cookieSettings(config: Pick<Config, 'insecureLocalhostCookies'>): CookieSettings {
  // `__Host-` needs Secure; the documented exception is plain-http loopback in development.
  return config.insecureLocalhostCookies ? { name: 'palisade_session', secure: false } : { name: '__Host-palisade_session', secure: true };
}

/** Wires every domain into one Fastify app. No listen: tests use inject, main.ts listens. */
export async function buildApp(deps: AppDeps) {
  const { config, db, clock, logger } = deps;
  const metrics = new Metrics(config.env !== 'test');
  const keyring = new Keyring([...config.keks]);
  const sealer = createSealer(keyring);
  const mail = createOutboxMail(sealer);
  const chainKeys = chainKeysFrom(keyring);
  // Started by the processes that serve (main.ts, `palisade worker`): heads of the chains they append to leave the database.
  const checkpoints = createCheckpointer({
    db, keys: chainKeys, clock, logger, file: config.auditCheckpoints.file, intervalMs: config.auditCheckpoints.intervalSeconds * 1000,
  });
  // Webhook events are audit events: the outbox is written by the same append, in the same transaction.
  const audit = createAuditWriter({
    db, clock, keys: chainKeys, onError: (err) => logger.error({ err }, 'audit append failed'), alsoWrite: outboxStatements,
    onAppend: (orgId) => checkpoints.noteAppend(orgId),
  });
  const sessions = createSessionService({
    db,
    clock,
    secret: config.sessionSecret,
    idleSeconds: config.session.idleSeconds,
    absoluteSeconds: config.session.absoluteSeconds,
    touchIntervalSeconds: config.session.touchIntervalSeconds,
  });
  const keyUsage = createKeyUsage({ db, onError: (err) => logger.error({ err }, 'api key last-used flush failed') });
  const apiKeys = createApiKeyService({ db, audit, clock, usage: keyUsage });
  const tenancyDeps = {
    db, audit, clock, mail, publicOrigin: config.publicOrigin,
    onPrivilegeChange: (tx: Parameters<typeof sessions.markRotate>[0], userId: string) => sessions.markRotate(tx, userId),
    onProjectDeleted: (tx: Tx, ctx: RequestContext, orgId: string, projectId: string) => apiKeys.revokeBoundTo(tx, ctx, orgId, projectId),
  };
  const orgs = createOrgService(tenancyDeps);
  const members = createMemberService(tenancyDeps);
  const invitations = createInvitationService(tenancyDeps);
  const roles = createRoleService(tenancyDeps);
  const projects = createProjectService(tenancyDeps);
  const assets = createAssetService({ db, audit, clock });
  const inbound = createInboundService({ db, audit, clock, sealer });
  const lockout = createLockout(db, config.lockout, () => clock.now());
  const mfa = createMfaService({ db, audit, clock, sealer, lockout, mail });
  const passkeys = createPasskeyService({ db, audit, clock, webauthn: config.webauthn, mail });
  const identity = createIdentityService({
    db, audit, clock, mail, publicOrigin: config.publicOrigin, lockout,
    revokeSessions: async (tx, userId, reason, keep) => {
      await sessions.revokeAll(tx, userId, reason, keep);
    },
  });
  const destination = { allowLoopback: config.webhooks.allowLoopback, requireHttps: config.env === 'production' };
  const webhooks = createWebhookService({ db, audit, clock, sealer, destination });
  const webhookWorker = createWebhookWorker({ db, clock, sealer, audit, logger, transport: createWebhookTransport(destination) });
  const cookie = cookieSettings(config);

  const auth: Authenticators = {
    async session(request, reply, ctx, orgId) {
      const value = (request.cookies as Record<string, string | undefined>)[cookie.name];
      const verified = await sessions.verify(value, ctx, orgId ?? undefined);
      if (!verified) {
        metrics.authFailures.inc({ kind: value ? 'session_invalid' : 'no_credential' });
        return null;
      }
      if (verified.rotatedCookie) setSessionCookie(reply, cookie, verified.rotatedCookie, sessions.absoluteSeconds);
      const standing = verified.standing ?? null;
      if (standing) {
        sessions.assertOrgPolicy(verified.actor.session, standing.policy);
        await sessions.touchForPolicy(verified.actor.session, standing.policy);
      }
      return { actor: verified.actor, access: standing?.access ?? null };
    },
    async key(request, _ctx, orgId) {
      const header = request.headers.authorization;
      const m = typeof header === 'string' ? /^Bearer ([A-Za-z0-9_]{1,100})$/i.exec(header) : null;
      if (!m || !orgId) {
        metrics.authFailures.inc({ kind: header ? 'key_invalid' : 'no_credential' });
        return null;
      }
      const origin = typeof request.headers.origin === 'string' ? request.headers.origin : null;
      const verified = await apiKeys.authenticate(m[1] as string, orgId, origin);
      if (!verified) metrics.authFailures.inc({ kind: 'key_invalid' });
      return verified;
    },
    readScope: (fn) => db.requestTransaction(fn),
    async denied(ctx, route, reason) {
      metrics.authFailures.inc({ kind: `denied_${reason}` });
      const params = { route: `${route.method} ${route.url}`, reason };
      // A non-member's probe is evidence for the operator, not for the org it probed.
      if (reason === 'not_member' || !ctx.org) {
        await audit.appendStandalone(SYSTEM_ORG_ID, ctx, { action: 'authz.denied', result: 'denied', details: params });
      } else {
        await audit.appendStandalone(ctx.org.orgId, ctx, { action: 'authz.denied', result: 'denied', details: params });
      }
    },
  };

  const domainRoutes: AnyRoute[] = [
    ...sessionRoutes({ db, clock, audit, sessions, identity, mfa, orgs, cookie }),
    ...mfaRoutes({ db, clock, audit, sessions, identity, mfa, cookie, listOrgs: (userId) => orgs.listMine(userId) }),
    ...identityRoutes(identity, mfa),
    ...passkeyRoutes(passkeys),
    ...passkeySessionRoutes({ db, clock, audit, sessions, cookie, passkeys, mfa, identity, lockout, listOrgs: (userId) => orgs.listMine(userId) }),
    ...tenancyRoutes({ orgs, members, invitations, roles, projects }),
    ...assetRoutes(assets),
    ...inboundRoutes(inbound),
    ...apiKeyRoutes(apiKeys),
    ...webhookRoutes(webhooks),
    ...auditRoutes(createAuditReader({ db })),
  ];
  let openapi: Record<string, unknown> | null = null;
  const routes: AnyRoute[] = [
    ...opsRoutes({ db, openapi: () => (openapi ??= buildOpenApi(routes, { version: VERSION, serverUrl: config.publicOrigin })) }),
    ...domainRoutes,
    ...apiMirrors(domainRoutes),
  ];

  const app: FastifyInstance = await createHttpServer({
    logger,
    allowedOrigins: config.allowedOrigins,
    corsOrigins: config.corsOrigins,
    trustedProxies: config.trustedProxies,
    hsts: config.publicOrigin.startsWith('https:') || config.env === 'production',
    sessionCookieName: cookie.name,
    metrics,
  });
  const strictAudit = config.env !== 'production';
  const limiter = createRateLimiter({
    redisUrl: config.redisUrl,
    policies: config.rateLimits as Partial<PolicyTable>,
    logger,
    onFailOpen: () => metrics.rateLimitFailOpen.inc(),
    maxMemoryKeysPerPolicy: deps.memoryKeysPerPolicy,
  });
  app.addHook('onClose', () => limiter.close());
  app.addHook('onClose', () => keyUsage.close());
  app.addHook('onClose', async () => {
    await webhookWorker.stop();
    // After the worker, so that its last appends are checkpointed too.
    await checkpoints.stop();
  });
  const pipeline = { auth, strictAudit, now: () => clock.now(), limiter, onLimited: (policy: string) => metrics.rateLimited.inc({ policy }) };
  // One encapsulated context per trust boundary, each with its own authentication stack.
  await app.register(async (anon) => mountRoutes(anon, routes.filter((r) => r.auth.mode === 'public' && !r.rawBody), pipeline));
  await app.register(async (signed) => {
    keepRawBodies(signed);
    mountRoutes(signed, routes.filter((r) => r.auth.mode === 'public' && r.rawBody), pipeline);
  });
  await app.register(async (console) => mountRoutes(console, routes.filter((r) => r.auth.mode === 'session'), pipeline));
  await app.register(async (keys) => mountRoutes(keys, routes.filter((r) => r.auth.mode === 'key'), pipeline));
  await app.ready();
  return { app, routes, services: { apiKeys, keyUsage, webhooks, webhookWorker, checkpoints, chainKeys, sessions, identity, mfa, lockout, passkeys, orgs, members, invitations, roles, projects, assets, inbound, audit, mail, sealer, keyring }, cookie, metrics };
}

export type BuiltApp = Awaited<ReturnType<typeof buildApp>>;
