import { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '../../kernel/audit-actions.js';

/** What the outbox reads of an appended audit event (the audit writer hands its event over). */
export interface AuditedEvent {
  org_id: string;
  id: string;
  at: string;
  action: string;
  result: string;
  actor_type: string;
  actor_id: string | null;
  target_type: string | null;
  target_id: string | null;
  details: unknown;
}

/**
 * Webhook event types are the audit actions marked `webhook` in the kernel's catalogue: whatever
 * the trail records for them (successful ones only) is what endpoints receive, from the same
 * transaction. Sign-in events stay out: they are about people, not the org's data.
 */
export { WEBHOOK_EVENT_TYPES, type WebhookEventType } from '../../kernel/audit-actions.js';

/** Subscribes to every type, present and future. */
export const ALL_EVENTS = '*';

const TYPES: ReadonlySet<string> = new Set(WEBHOOK_EVENT_TYPES);

export function isWebhookEventType(action: string): action is WebhookEventType {
  return TYPES.has(action);
}

/**
 * Detail keys that name a person (an invitation's address): kept in the trail, sealed, and never
 * in a payload, which is stored in clear until delivered and kept afterwards (a receiver that
 * needs the address reads the invitation through the API, with its permission checked then).
 */
const PERSONAL_DETAIL_KEYS: ReadonlySet<string> = new Set(['email']);

function withoutPersonal(details: unknown): unknown {
  if (typeof details !== 'object' || details === null || Array.isArray(details)) return details;
  return Object.fromEntries(Object.entries(details).filter(([k]) => !PERSONAL_DETAIL_KEYS.has(k)));
}

/**
 * The body sent to endpoints (Standard Webhooks shape: type, timestamp, data). The client
 * address and user agent of the audit event stay in the trail, and so do the details that name a
 * person: receivers need what happened, not who browsed from where.
 */
export function payloadOf(event: AuditedEvent): string {
  return JSON.stringify({
    type: event.action,
    timestamp: event.at,
    data: {
      id: event.id,
      orgId: event.org_id,
      actor: { type: event.actor_type, id: event.actor_id },
      target: event.target_type ? { type: event.target_type, id: event.target_id } : null,
      details: withoutPersonal(event.details),
    },
  });
}

/** The webhook-id of an event: stable across retries and redeliveries, so receivers can deduplicate. */
export function messageIdOf(event: Pick<AuditedEvent, 'id'>): string {
  return `msg_${event.id.replace(/-/g, '')}`;
}
