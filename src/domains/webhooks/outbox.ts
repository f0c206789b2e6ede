import { sql } from 'kysely';
import { exec, type Tx } from '../../db/database.js';
import { ALL_EVENTS, isWebhookEventType, messageIdOf, payloadOf, type AuditedEvent } from './events.js';

/**
 * The transactional outbox: called by the audit writer inside the transaction that appends the
 * event, it writes one pending delivery per subscribed, enabled endpoint and marks the org due.
 * A change that rolls back sends nothing; a committed one is delivered even if the process dies
 * right after the commit.
 */
export async function enqueueWebhooks(tx: Tx, event: AuditedEvent): Promise<void> {
  // Most audited actions are not webhook events: they cost nothing here.
  if (event.result !== 'success' || !isWebhookEventType(event.action)) return;
  await exec(
    tx,
    sql`with queued as (
          insert into webhook_deliveries (org_id, id, endpoint_id, message_id, event_type, payload, status, attempts, next_attempt_at, created_at)
          select e.org_id, gen_random_uuid(), e.id, ${messageIdOf(event)}, ${event.action}, ${payloadOf(event)}, 'pending', 0, ${event.at}::timestamptz, ${event.at}::timestamptz
          from webhook_endpoints e
          where e.org_id = ${event.org_id} and e.enabled and (${event.action}::text = any (e.events) or ${ALL_EVENTS}::text = any (e.events))
          returning 1)
        insert into webhook_due (org_id, due_at) select ${event.org_id}::uuid, ${event.at}::timestamptz where exists (select 1 from queued)
        on conflict (org_id) do update set due_at = least(webhook_due.due_at, excluded.due_at)`,
  );
}
