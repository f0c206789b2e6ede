import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { AppError } from '../../kernel/errors.js';
import type { Database } from '../../db/database.js';

export function opsRoutes(d: { db: Database; openapi: () => Record<string, unknown>; metrics: () => Promise<string> }): AnyRoute[] {
  const tags = ['operations'];
  const publicOps = (reason: string) => ({ mode: 'public' as const, reason });
  return [
    defineRoute({
      method: 'GET', url: '/healthz', summary: 'Liveness', tags, auth: publicOps('load balancers probe without credentials'),
      permission: 'none', rateLimit: 'probe', audit: { none: 'probe' }, schema: { query: z.object({}) },
      handler: async () => ({ status: 'ok' }),
    }),
    defineRoute({
      method: 'GET', url: '/readyz', summary: 'Readiness: the database answers', tags, auth: publicOps('orchestrators probe without credentials'),
      permission: 'none', rateLimit: 'probe', audit: { none: 'probe' }, schema: {},
      handler: async () => {
        try {
          await d.db.ping();
        } catch {
          throw new AppError('unavailable', 'database unreachable');
        }
        return { status: 'ready', database: d.db.engine };
      },
    }),
    defineRoute({
      method: 'GET', url: '/openapi.json', summary: 'OpenAPI 3.1 description of every route with its permission', tags,
      auth: publicOps('the API description holds no tenant data'), permission: 'none', rateLimit: 'probe',
      audit: { none: 'read' }, schema: {}, handler: async () => d.openapi(),
    }),
    defineRoute({
      method: 'GET', url: '/metrics', summary: 'Prometheus metrics', tags,
      auth: publicOps('scraped by Prometheus; counters by route and status, no tenant data'), permission: 'none', rateLimit: 'probe',
      audit: { none: 'read' }, schema: {},
      handler: async ({ reply }) => reply.type('text/plain; version=0.0.4').send(await d.metrics()),
    }),
  ];
}
