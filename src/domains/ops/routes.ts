import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { AppError } from '../../kernel/errors.js';
import type { Database } from '../../db/database.js';
import { liveness, openApiDocument, readiness } from './responses.js';

/**
 * What the API listener tells anyone: that it lives, that it is ready, and how its API is shaped.
 * Nothing operational beyond that: Prometheus metrics (per-route counts) are served only by the
 * metrics listener (src/http/metrics-server.ts), and readiness does not name the database engine.
 */
export function opsRoutes(d: { db: Database; openapi: () => Record<string, unknown> }): AnyRoute[] {
  const tags = ['operations'];
  const publicOps = (reason: string) => ({ mode: 'public' as const, reason });
  return [
    defineRoute({
      method: 'GET', url: '/healthz', summary: 'Liveness', tags, auth: publicOps('load balancers probe without credentials'),
      permission: 'none', rateLimit: 'probe', audit: { none: 'probe' }, schema: { query: z.object({}), response: liveness }, errors: [],
      handler: async () => ({ status: 'ok' as const }),
    }),
    defineRoute({
      method: 'GET', url: '/readyz', summary: 'Readiness: the database answers', tags, auth: publicOps('orchestrators probe without credentials'),
      permission: 'none', rateLimit: 'probe', audit: { none: 'probe' }, schema: { response: readiness }, errors: [],
      handler: async () => {
        try {
          await d.db.ping();
        } catch {
          throw new AppError('unavailable', 'database unreachable');
        }
        // The engine stays unsaid: "pglite" would tell an outsider which isolation backstop is weaker
        // (docs/threat-model.md, embedded engine limit). Operators read it in the start-up line.
        return { status: 'ready' as const };
      },
    }),
    defineRoute({
      method: 'GET', url: '/openapi.json', summary: 'OpenAPI 3.1 description of every route with its permission', tags,
      auth: publicOps('the API description holds no tenant data'), permission: 'none', rateLimit: 'probe',
      audit: { none: 'read' }, schema: { response: openApiDocument }, errors: [], handler: async () => d.openapi(),
    }),
  ];
}
