import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { projectParams, userText, uuid } from '../../http/schemas.js';
import { assetList, assetView } from './responses.js';
import type { AssetService } from './service.js';

export function assetRoutes(assets: AssetService): AnyRoute[] {
  const tags = ['assets'];
  return [
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/projects/:projectId/assets', summary: 'List a project\u2019s assets (newest first)', tags,
      auth: { mode: 'session' }, api: true, permission: 'assets:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: {
        params: projectParams, query: z.strictObject({ limit: z.coerce.number().int().min(1).max(200).default(20) }), response: assetList,
      },
      errors: [],
      handler: async ({ ctx, params, query }) => ({ assets: await assets.list(ctx, params.projectId, query.limit) }),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/projects/:projectId/assets', summary: 'Create an asset', tags,
      auth: { mode: 'session' }, api: true, permission: 'assets:write', rateLimit: 'authenticated', audit: { action: 'asset.created' },
      status: 201,
      schema: {
        params: projectParams, body: z.strictObject({ name: userText(200), kind: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/) }), response: assetView,
      },
      errors: [],
      example: () => ({ name: 'web-01', kind: 'host' }),
      handler: ({ ctx, params, body }) => assets.create(ctx, params.projectId, body),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId/projects/:projectId/assets/:assetId', summary: 'Delete an asset', tags,
      auth: { mode: 'session' }, api: true, permission: 'assets:write', rateLimit: 'authenticated', audit: { action: 'asset.deleted' },
      status: 204, schema: { params: z.strictObject({ orgId: uuid, projectId: uuid, assetId: uuid }) }, errors: [],
      handler: async ({ ctx, params }) => assets.remove(ctx, params.projectId, params.assetId),
    }),
  ];
}
