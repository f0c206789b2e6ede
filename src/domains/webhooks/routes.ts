import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams, userText, uuid } from '../../http/schemas.js';
import { WEBHOOK_EVENT_TYPES } from './events.js';
import { createdEndpoint, deliveryList, endpointList, endpointView, redelivery, rotatedSecret, subscription } from './responses.js';
import type { WebhookService } from './service.js';

const events = z.array(subscription).min(1).max(WEBHOOK_EVENT_TYPES.length + 1);
const endpointParams = z.strictObject({ orgId: uuid, endpointId: uuid });
const url = z.string().max(2048);

export function webhookRoutes(webhooks: WebhookService): AnyRoute[] {
  const tags = ['webhooks'];
  const base = '/api/orgs/:orgId/webhooks';
  const common = { tags, auth: { mode: 'session' }, permission: 'webhooks:manage', rateLimit: 'authenticated' } as const;
  return [
    defineRoute({
      ...common, method: 'POST', url: base, summary: 'Add a webhook endpoint (its signing secret is shown in this answer only)',
      audit: { action: 'webhook.endpoint_created' }, stepUp: true, status: 201,
      schema: {
        params: orgParams, body: z.strictObject({ url, events, description: userText(200).optional(), enabled: z.boolean().optional() }),
        response: createdEndpoint,
      },
      // conflict: the org already has MAX_ENDPOINTS endpoints.
      errors: ['conflict'],
      example: () => ({ url: 'https://hooks.example.com/palisade', events: ['project.created'] }),
      handler: ({ ctx, body }) => webhooks.create(ctx, body),
    }),
    defineRoute({
      ...common, method: 'GET', url: base, summary: 'List webhook endpoints', audit: { none: 'read' },
      schema: { params: orgParams, response: endpointList }, errors: [],
      handler: async ({ ctx }) => ({ endpoints: await webhooks.list(ctx) }),
    }),
    defineRoute({
      ...common, method: 'GET', url: `${base}/:endpointId`, summary: 'Read a webhook endpoint', audit: { none: 'read' },
      schema: { params: endpointParams, response: endpointView }, errors: [],
      handler: ({ ctx, params }) => webhooks.get(ctx, params.endpointId),
    }),
    defineRoute({
      ...common, method: 'PATCH', url: `${base}/:endpointId`, summary: 'Change a webhook endpoint (URL, events, description, enabled)',
      audit: { action: 'webhook.endpoint_updated' }, stepUp: true,
      schema: {
        params: endpointParams,
        body: z.strictObject({ url: url.optional(), events: events.optional(), description: userText(200).optional(), enabled: z.boolean().optional() }),
        response: endpointView,
      },
      errors: [],
      example: () => ({ description: 'renamed' }),
      handler: ({ ctx, params, body }) => webhooks.update(ctx, params.endpointId, body),
    }),
    defineRoute({
      ...common, method: 'DELETE', url: `${base}/:endpointId`, summary: 'Delete a webhook endpoint and its delivery log',
      audit: { action: 'webhook.endpoint_deleted' }, status: 204,
      schema: { params: endpointParams }, errors: [],
      handler: async ({ ctx, params }) => webhooks.remove(ctx, params.endpointId),
    }),
    defineRoute({
      ...common, method: 'POST', url: `${base}/:endpointId/rotate-secret`,
      summary: 'Issue a new signing secret (shown once); the previous one keeps signing for 24 hours',
      audit: { action: 'webhook.secret_rotated' }, stepUp: true,
      schema: { params: endpointParams, response: rotatedSecret }, errors: [],
      handler: ({ ctx, params }) => webhooks.rotateSecret(ctx, params.endpointId),
    }),
    defineRoute({
      ...common, method: 'GET', url: `${base}/:endpointId/deliveries`, summary: 'The delivery log: status, attempts, latency (newest first)',
      audit: { none: 'read' },
      schema: {
        params: endpointParams, query: z.strictObject({ limit: z.coerce.number().int().min(1).max(100).default(20) }), response: deliveryList,
      },
      errors: [],
      handler: async ({ ctx, params, query }) => ({ deliveries: await webhooks.deliveries(ctx, params.endpointId, query.limit) }),
    }),
    defineRoute({
      ...common, method: 'POST', url: `${base}/:endpointId/deliveries/:deliveryId/redeliver`,
      summary: 'Send a finished delivery again (same webhook-id)', audit: { action: 'webhook.redelivered' }, status: 202,
      schema: { params: z.strictObject({ orgId: uuid, endpointId: uuid, deliveryId: uuid }), response: redelivery },
      // conflict: the endpoint is disabled.
      errors: ['conflict'],
      handler: ({ ctx, params }) => webhooks.redeliver(ctx, params.endpointId, params.deliveryId),
    }),
  ];
}
