import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';
import { ALL_EVENTS, WEBHOOK_EVENT_TYPES, type WebhookEventType } from './events.js';

/** A webhook event type: an audit action marked `webhook` in the kernel's catalogue. */
export const webhookEventType = z.enum(WEBHOOK_EVENT_TYPES as [WebhookEventType, ...WebhookEventType[]]);

/** What an endpoint subscribes to: an event type, or `*` for every type, present and future. */
export const subscription = z.enum([ALL_EVENTS, ...WEBHOOK_EVENT_TYPES]);
export type Subscription = z.infer<typeof subscription>;

/** What the API sends of an endpoint: never its signing secrets (stored sealed). */
export const endpointView = z.object({
  id: uuid,
  url: z.string(),
  description: z.string(),
  events: z.array(subscription),
  enabled: z.boolean(),
  disabledReason: z.enum(['manual', 'failing']).nullable()
    .meta({ description: 'manual: turned off by a member; failing: turned off by the worker after repeated failures' }),
  consecutiveFailures: z.number().int(),
  previousSecretExpiresAt: timestamp.nullable()
    .meta({ description: 'While set, deliveries carry a signature by the previous secret too' }),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export type EndpointView = z.infer<typeof endpointView>;

export const endpointList = z.object({ endpoints: z.array(endpointView) });

const secret = z.string().meta({ description: 'The signing secret (whsec_…): shown in this answer only, stored sealed' });

/** A new endpoint and its signing secret: the only answer that holds it. */
export const createdEndpoint = z.object({ endpoint: endpointView, secret });

export const rotatedSecret = z.object({
  secret,
  previousSecretExpiresAt: timestamp.meta({ description: 'Until then the previous secret keeps signing too' }),
});

export const deliveryAttempt = z.object({
  attempt: z.number().int(),
  at: timestamp,
  status: z.number().int().nullable().meta({ description: 'The receiver\u2019s HTTP status; null when none was received' }),
  latencyMs: z.number().int(),
  error: z.string().nullable(),
});

export const deliveryView = z.object({
  id: uuid,
  messageId: z.string().meta({ description: 'The webhook-id header: the same across retries and redeliveries' }),
  eventType: webhookEventType,
  status: z.enum(['pending', 'succeeded', 'failed']),
  attempts: z.array(deliveryAttempt),
  nextAttemptAt: timestamp.nullable(),
  createdAt: timestamp,
  completedAt: timestamp.nullable(),
});
export type DeliveryView = z.infer<typeof deliveryView>;

export const deliveryList = z.object({ deliveries: z.array(deliveryView).meta({ description: 'Newest first' }) });

export const redelivery = z.object({ deliveryId: uuid.meta({ description: 'The new delivery (same webhook-id as the one sent again)' }) });
