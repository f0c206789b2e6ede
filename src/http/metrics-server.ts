import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { randomToken, safeEqual } from '../crypto/index.js';
import { AppError } from '../kernel/errors.js';
import type { Metrics } from './metrics.js';
import { errorHandler, sendProblem } from './problem.js';

export interface MetricsServerOptions {
  metrics: Metrics;
  /** The bearer token every scrape must present; null only on a loopback listener (config enforces it). */
  token: string | null;
  logger: Logger;
}

/**
 * The Prometheus listener: GET /metrics and nothing else, on a port of its own (METRICS_PORT), so
 * that per-route request and failure counts never reach the API's audience (review R4 finding 8).
 * Not an API route: it sits outside the route table, its tenancy and its rate limits; the
 * credential is one operator token, compared in constant time. Requests are logged like the
 * API's (method, route, status, address), never their headers.
 */
export async function createMetricsServer(opts: MetricsServerOptions): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: opts.logger as FastifyBaseLogger,
    genReqId: () => randomToken(12),
    exposeHeadRoutes: false,
    logController: new LogController({ disableRequestLogging: true }),
    return503OnClosing: true,
  });
  const expected = opts.token === null ? null : `Bearer ${opts.token}`;
  app.addHook('onRequest', async (request: FastifyRequest, reply) => {
    if (expected === null) return;
    const presented = request.headers.authorization;
    if (typeof presented !== 'string' || !safeEqual(presented, expected)) {
      reply.header('WWW-Authenticate', 'Bearer realm="metrics"');
      throw new AppError('unauthenticated', 'the metrics token is required (Authorization: Bearer …)');
    }
  });
  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      { req: { id: request.id, method: request.method, route: request.routeOptions.url ?? 'unmatched', ip: request.ip }, status: reply.statusCode },
      'metrics request',
    );
  });
  app.get('/metrics', async (_request, reply) => reply.type('text/plain; version=0.0.4').send(await opts.metrics.render()));
  app.setErrorHandler((err, request, reply) => errorHandler(err, request, reply));
  app.setNotFoundHandler((request, reply) => sendProblem(reply, request, new AppError('not_found')));
  await app.ready();
  return app;
}
