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
 * The audit actions an org can subscribe to. Webhook events are audit events: whatever the trail
 * records for these actions (successful ones only) is what endpoints receive, from the same
 * transaction. Sign-in events stay out: they are about people, not the org's data.
 */
export const WEBHOOK_EVENT_TYPES = [
  'org.updated', 'org.settings_updated',
  'member.role_changed', 'member.removed', 'member.left', 'member.sessions_revoked',
  'invitation.created', 'invitation.revoked', 'invitation.accepted',
  'role.created', 'role.updated', 'role.deleted',
  'project.created', 'project.updated', 'project.deleted', 'project.member_assigned', 'project.member_unassigned',
  'asset.created', 'asset.deleted',
  'api_key.created', 'api_key.revoked',
  'webhook.endpoint_disabled',
] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/** Subscribes to every type, present and future. */
export const ALL_EVENTS = '*';

const TYPES: ReadonlySet<string> = new Set(WEBHOOK_EVENT_TYPES);

export function isWebhookEventType(action: string): action is WebhookEventType {
  return TYPES.has(action);
}

/**
 * The body sent to endpoints (Standard Webhooks shape: type, timestamp, data). The client
 * address and user agent of the audit event stay in the trail: receivers need what happened,
 * not who browsed from where.
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
      details: event.details,
    },
  });
}

/** The webhook-id of an event: stable across retries and redeliveries, so receivers can deduplicate. */
export function messageIdOf(event: Pick<AuditedEvent, 'id'>): string {
  return `msg_${event.id.replace(/-/g, '')}`;
}
