import cookie from '@fastify/cookie';
import cors from '@fastify/cors';
import type { IncomingMessage, ServerResponse } from 'node:http';
import helmet, { type HelmetOptions } from 'helmet';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { requestId } from '../crypto/index.js';
import { AppError } from '../kernel/errors.js';
import { neutralizeText } from '../kernel/text.js';
import type { RequestContext } from '../kernel/context.js';
import type { Metrics } from './metrics.js';
import { errorHandler, sendProblem } from './problem.js';
import { isStateChanging } from './pipeline.js';
import { API_PREFIX, assertRouteComplete, type RouteDef } from './route.js';

export interface HttpOptions {
  logger: Logger;
  allowedOrigins: readonly string[];
  corsOrigins: readonly string[] | '*';
  trustedProxies: readonly string[];
  hsts: boolean;
  /** Name of the session cookie: its presence makes Origin/Referer mandatory on mutations. */
  sessionCookieName: string;
  metrics: Metrics;
  bodyLimit?: number;
  /** What answers a request no route matched before the 404 does (the console's bundle). */
  fallback?: (request: FastifyRequest, reply: FastifyReply) => FastifyReply | null;
}

function originOf(value: string | undefined): string | null {
  if (!value) return null;
  try {
    return new URL(value).origin;
  } catch {
    return 'invalid';
  }
}

/**
 * CSRF defence for cookie-authenticated requests: a state-changing request that carries the
 * session cookie must come from an allowed Origin (or, when a browser omits Origin, Referer).
 * A foreign Origin is refused even without a cookie (login CSRF).
 */
export function checkCsrf(request: FastifyRequest, allowed: ReadonlySet<string>, cookieName: string): void {
  if (!isStateChanging(request.method)) return;
  // Key routes never read a cookie: a cross-site page has no ambient credential to ride on
  // there, and browsers calling them with a publishable key are checked against the org's
  // registered origins instead.
  if (isKeyRoute(request.url)) return;
  // A route that declares it takes another site's form post (the SAML ACS) carries its own
  // credential in the body (a signed response) and its own browser binding.
  if ((request.routeOptions.config as { route?: Partial<RouteDef> } | undefined)?.route?.crossSiteForm) return;
  const origin = originOf(request.headers.origin);
  const referer = originOf(request.headers.referer);
  const source = origin ?? referer;
  if (source !== null) {
    if (!allowed.has(source)) throw new AppError('csrf_rejected', `${source} is not an allowed origin`);
    return;
  }
  const hasCookie = typeof request.headers.cookie === 'string' && request.headers.cookie.includes(`${cookieName}=`);
  if (hasCookie) throw new AppError('csrf_rejected', 'Origin or Referer is required');
}

function isKeyRoute(url: string): boolean {
  return url.startsWith(`${API_PREFIX}/`);
}

/**
 * What helmet sets for these options, read off its middleware once: helmet stays the authority
 * on the headers and their values, and a request pays one headers() call.
 */
function securityHeaders(options: HelmetOptions): Record<string, string> {
  const headers: Record<string, string> = {};
  const res = {
    setHeader(name: string, value: unknown) {
      headers[name.toLowerCase()] = String(value);
    },
    removeHeader(name: string) {
      delete headers[name.toLowerCase()];
    },
  };
  let done = false;
  // helmet's middleware is synchronous and reads nothing of the request for static directives.
  helmet(options)({} as IncomingMessage, res as unknown as ServerResponse, () => (done = true));
  if (!done || Object.keys(headers).length === 0) throw new Error('helmet set no headers');
  return headers;
}

export async function createHttpServer(opts: HttpOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger,
    trustProxy: opts.trustedProxies.length > 0 ? [...opts.trustedProxies] : false,
    bodyLimit: opts.bodyLimit ?? 64 * 1024,
    genReqId: requestId,
    exposeHeadRoutes: false,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
    // Every plugin here is async (none can forget a done callback); the 10 s default only fails
    // a start on a machine busy compiling the embedded engine at the same moment.
    pluginTimeout: 60_000,
    routerOptions: { maxParamLength: 200 },
    // The router answers a malformed percent-encoding or an over-long path parameter before any
    // hook or error handler runs, by default as plain JSON echoing the path: answer problem+json.
    // An over-long parameter cannot name anything, like any other malformed id (404).
    frameworkErrors: (err, request, reply) =>
      sendProblem(reply, request, new AppError(err.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 'not_found' : 'malformed_request')),
  });

  app.addHook('onRoute', (route) => {
    // @fastify/cors answers preflights on its own catch-all OPTIONS route, which carries no data.
    if (route.method === 'OPTIONS' && route.url === '*') return;
    assertRouteComplete(route.config?.route, `${String(route.method)} ${route.url}`);
  });

  const allowed = new Set(opts.allowedOrigins);
  app.decorateRequest('ctx', null as unknown as RequestContext);
  app.addHook('onRequest', async (request) => {
    request.ctx = {
      requestId: request.id,
      ip: request.ip,
      // Written to the audit trail and into security mails: neutralised like any text that never
      // met the user-text rule (review R5 E: C1 controls and bidi overrides came through raw).
      userAgent: neutralizeText(String(request.headers['user-agent'] ?? ''), 512),
      actor: { type: 'anonymous' },
      org: null,
      audited: [],
    };
  });

  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    opts.metrics.observeRequest(request.method, route, reply.statusCode, reply.elapsedTime / 1000);
    // The path without its query (no route takes a secret in its path; a query might carry one).
    // route and path sit beside `req`: Fastify's req serializer keeps only method and address.
    const path = request.url.split('?', 1)[0]?.slice(0, 256);
    request.log.info(
      { req: { method: request.method, ip: request.ip }, route, path, status: reply.statusCode, ms: Math.round(reply.elapsedTime) },
      'request',
    );
  });

  await app.register(cookie);
  // The same headers on every answer: computed once (Fastify's helmet plugin built helmet's
  // middleware anew, CSP parsing included, on every request: docs/performance.md).
  const security = securityHeaders({
    contentSecurityPolicy: {
      useDefaults: false,
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        fontSrc: ["'self'"],
        objectSrc: ["'none'"],
        baseUri: ["'none'"],
        formAction: ["'self'"],
        frameAncestors: ["'none'"],
      },
    },
    strictTransportSecurity: opts.hsts ? { maxAge: 31_536_000, includeSubDomains: true } : false,
    crossOriginResourcePolicy: { policy: 'same-origin' },
    referrerPolicy: { policy: 'no-referrer' },
  });
  app.addHook('onRequest', (_request, reply, done) => {
    reply.headers(security);
    done();
  });
  const consoleCors = {
    origin: opts.corsOrigins === '*' ? true : [...opts.corsOrigins],
    credentials: true,
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
    maxAge: 600,
  };
  // Key routes answer any origin without credentials: the Bearer key is the whole credential
  // (a page that has it can use it anyway), and publishable keys are held to the org's
  // registered origins when the request is authenticated.
  const keyCors = { origin: true, credentials: false, methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'], allowedHeaders: ['authorization', 'content-type'], maxAge: 600 };
  await app.register(cors, {
    delegator: (request, callback) => callback(null, isKeyRoute(request.url ?? '') ? keyCors : consoleCors),
  });
  // After helmet's and cors' hooks: a refused request still carries the security headers.
  app.addHook('onRequest', async (request) => checkCsrf(request, allowed, opts.sessionCookieName));

  app.setErrorHandler((err, request, reply) => errorHandler(err, request, reply));
  app.setNotFoundHandler((request, reply) => opts.fallback?.(request, reply) ?? sendProblem(reply, request, new AppError('not_found')));
  return app;
}
