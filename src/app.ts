import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { Config } from './config/index.js';
import type { Database } from './db/database.js';
import type { Clock } from './kernel/clock.js';
import { buildOpenApi } from './http/openapi.js';
import { keepRawBodies, mountRoutes } from './http/pipeline.js';
import { apiMirrors, type AnyRoute } from './http/route.js';
import { createHttpServer } from './http/server.js';
import { acceptUploads } from './http/upload.js';
import { consoleFallback } from './http/console.js';
import { createRateLimiter, type PolicyTable } from './http/rate-limit/index.js';
import { Metrics } from './http/metrics.js';
import { createAuthenticators } from './authenticators.js';
import { createServices, type ServicesConfig } from './services.js';
import { apiKeyRoutes } from './domains/api-keys/index.js';
import { webhookRoutes } from './domains/webhooks/index.js';
import { assetRoutes } from './domains/assets/index.js';
import { fileRoutes } from './domains/files/index.js';
import { auditRoutes } from './domains/audit/index.js';
import { auditStreamRoutes } from './domains/audit-streams/index.js';
import { identityRoutes, passkeyRoutes } from './domains/identity/index.js';
import { inboundRoutes } from './domains/inbound/index.js';
import { credentialRoutes } from './domains/credentials/index.js';
import { dataKeyRoutes } from './domains/keys/index.js';
import { exportRoutes } from './domains/exports/index.js';
import { breakGlassRoutes, samlAuthRoutes, ssoAuthRoutes, ssoRoutes } from './domains/sso/index.js';
import { socialRoutes } from './domains/social/index.js';
import { opsRoutes } from './domains/ops/routes.js';
import { magicLinkRoutes, mfaRoutes, passkeySessionRoutes, sessionRoutes, type CookieSettings } from './domains/sessions/index.js';
import { tenancyRoutes } from './domains/tenancy/index.js';

export type AppConfig = ServicesConfig &
  Pick<Config, 'allowedOrigins' | 'corsOrigins' | 'trustedProxies' | 'insecureLocalhostCookies' | 'redisUrl' | 'redisLimitTimeoutMs' | 'rateLimits'>;

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

/** The services of createServices behind one Fastify app: routes, authentication, limits. No listen: tests use inject, main.ts listens. */
export async function buildApp(deps: AppDeps) {
  const { config, db, clock, logger } = deps;
  const metrics = new Metrics(config.env !== 'test');
  metrics.watchAuthCache(() => db.authCacheStats());
  const services = createServices(config, db, clock, logger, { scannerUnavailable: (reason) => metrics.scannerUnavailable.inc({ reason }) });
  const { sessions, signIn, identity, mfa, orgs, lockout, passkeys, audit } = services;
  const cookie = cookieSettings(config);
  const auth = createAuthenticators({ db, sessions, apiKeys: services.apiKeys, audit, cookie, metrics });

  const domainRoutes: AnyRoute[] = [
    ...sessionRoutes({ db, clock, audit, sessions, signIn, identity, mfa, orgs, cookie, ssoGate: services.enforcement }),
    ...mfaRoutes({ signIn, identity, mfa, cookie, listOrgs: (userId) => orgs.listMine(userId) }),
    ...identityRoutes(identity, mfa),
    ...passkeyRoutes(passkeys),
    ...passkeySessionRoutes({ signIn, cookie, passkeys, mfa, identity, lockout, listOrgs: (userId) => orgs.listMine(userId) }),
    ...tenancyRoutes({ orgs, deletion: services.orgDeletion, members: services.members, invitations: services.invitations, roles: services.roles, projects: services.projects, subjects: services.subjects }),
    ...assetRoutes(services.assets),
    ...fileRoutes(services.files),
    ...inboundRoutes(services.inbound),
    ...credentialRoutes(services.credentials),
    ...ssoRoutes({ domains: services.domains, connections: services.connections, sso: services.sso, saml: services.saml, tests: services.ssoTests, enforcement: services.enforcement, secureCookies: cookie.secure }),
    ...breakGlassRoutes({ enforcement: services.enforcement, identity, mfa, audit }),
    ...ssoAuthRoutes({ sso: services.sso, saml: services.saml, signIn, cookie, mfa, audit }),
    ...samlAuthRoutes({ saml: services.saml, sso: services.sso, signIn, cookie, mfa, audit }),
    ...socialRoutes({ social: services.social, identities: services.socialIdentities, signIn, cookie, mfa, audit }),
    ...magicLinkRoutes({ magicLinks: services.magicLinks, signIn, mfa, audit, orgs, cookie, ssoGate: services.enforcement }),
    ...apiKeyRoutes(services.apiKeys),
    ...webhookRoutes(services.webhooks),
    ...auditRoutes(services.auditReader, services.auditVerifier),
    ...auditStreamRoutes(services.auditStreams),
    ...dataKeyRoutes(services.dataKeys),
    ...exportRoutes({ exports: services.exports, signing: services.exportSigning }),
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
    fallback: consoleFallback(),
  });
  const strictAudit = config.env !== 'production';
  const limiter = createRateLimiter({
    redisUrl: config.redisUrl,
    failOpenTimeoutMs: config.redisLimitTimeoutMs,
    policies: config.rateLimits as Partial<PolicyTable>,
    logger,
    onFailOpen: () => metrics.rateLimitFailOpen.inc(),
    maxMemoryKeysPerPolicy: deps.memoryKeysPerPolicy,
  });
  app.addHook('onClose', () => limiter.close());
  // Closing the app ends the services too: whoever started the background jobs has them stopped gracefully.
  app.addHook('onClose', () => services.close());
  const pipeline = { auth, strictAudit, now: () => clock.now(), limiter, onLimited: (policy: string) => metrics.rateLimited.inc({ policy }), uploadPace: config.uploads.pace };
  // One encapsulated context per trust boundary, each with its own authentication stack.
  await app.register(async (anon) => mountRoutes(anon, routes.filter((r) => r.auth.mode === 'public' && !r.rawBody), pipeline));
  await app.register(async (signed) => {
    keepRawBodies(signed);
    mountRoutes(signed, routes.filter((r) => r.auth.mode === 'public' && r.rawBody), pipeline);
  });
  await app.register(async (console) => mountRoutes(console, routes.filter((r) => r.auth.mode === 'session' && !r.upload), pipeline));
  await app.register(async (keys) => mountRoutes(keys, routes.filter((r) => r.auth.mode === 'key' && !r.upload), pipeline));
  // Uploads: multipart bodies, streamed to the handler; the other contexts never parse one.
  await app.register(async (uploads) => {
    await acceptUploads(uploads);
    mountRoutes(uploads, routes.filter((r) => r.auth.mode !== 'public' && r.upload), pipeline);
  });
  await app.ready();
  return { app, routes, services, cookie, metrics };
}

export type BuiltApp = Awaited<ReturnType<typeof buildApp>>;
