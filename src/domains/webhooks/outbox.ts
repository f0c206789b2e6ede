import { sql, type RawBuilder } from 'kysely';
import { exec, type Tx } from '../../db/database.js';
import { ALL_EVENTS, isWebhookEventType, messageIdOf, payloadOf, type AuditedEvent } from './events.js';

/**
 * The channel a queued delivery notifies on commit (its payload: the org id). Workers listening on
 * it start at once instead of at their next poll (issue 15: event to receipt).
 */
export const WEBHOOK_CHANNEL = 'palisade_webhooks';

/**
 * The transactional outbox, as part of the audit append itself: for an event endpoints may
 * subscribe to, two more sub-statements of the append's one statement write a pending delivery
 * per subscribed, enabled endpoint and mark the org due. A change that rolls back sends
 * nothing; a committed one is delivered even if the process dies right after the commit; and
 * an org without endpoints pays no extra round trip. Null when the event is not a webhook event.
 */
export function outboxStatements(event: AuditedEvent): RawBuilder<unknown> | null {
  if (event.result !== 'success' || !isWebhookEventType(event.action)) return null;
  return sql`webhook_queued as (
      insert into webhook_deliveries (org_id, id, endpoint_id, message_id, event_type, payload, status, attempts, next_attempt_at, created_at)
      select e.org_id, gen_random_uuid(), e.id, ${messageIdOf(event)}, ${event.action}, ${payloadOf(event)}, 'pending', 0,
        ${event.at}::timestamptz, ${event.at}::timestamptz
      from webhook_endpoints e
      where e.org_id = ${event.org_id} and e.enabled and (${event.action}::text = any (e.events) or ${ALL_EVENTS}::text = any (e.events))
      returning 1),
    webhook_woken as (
      insert into webhook_due (org_id, due_at)
      select ${event.org_id}::uuid, ${event.at}::timestamptz
      from (select 1 as one from webhook_queued limit 1) q,
        -- Correlated with q, so evaluated only when a delivery was queued: NOTIFY serialises
        -- committing transactions on a global queue, which a change nobody subscribes to must not pay.
        lateral (select pg_notify(${WEBHOOK_CHANNEL}, ${event.org_id} || left(q.one::text, 0))) n
      on conflict (org_id) do update set due_at = least(webhook_due.due_at, excluded.due_at)
      returning 1)`;
}

/** Marks the org due at `at` (or keeps an earlier time): the worker only looks at orgs listed here. */
export async function markOrgDue(tx: Tx, orgId: string, at: string): Promise<void> {
  await exec(
    tx,
    sql`insert into webhook_due (org_id, due_at) values (${orgId}, ${at}::timestamptz)
        on conflict (org_id) do update set due_at = least(webhook_due.due_at, excluded.due_at)`,
  );
}
