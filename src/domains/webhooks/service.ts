import { sql } from 'kysely';
import { newId } from '../../crypto/index.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import { type Database, exec, lockOrgCap, one, rows, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { checkDestinationUrl } from './destination.js';
import { markOrgDue } from './outbox.js';
import type { DeliveryView, EndpointView, Subscription } from './responses.js';
import { newWebhookSecret } from './signing.js';

/** Endpoints per org. */
export const MAX_ENDPOINTS = 20;
/** How long the previous secret keeps signing after a rotation. */
export const ROTATION_OVERLAP_SECONDS = 24 * 3600;

interface EndpointRow {
  id: string;
  url: string;
  description: string;
  events: Subscription[];
  enabled: boolean;
  disabled_reason: EndpointView['disabledReason'];
  consecutive_failures: number;
  previous_secret_expires_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const ENDPOINT_COLUMNS = sql`id, url, description, events, enabled, disabled_reason, consecutive_failures, previous_secret_expires_at, created_at, updated_at`;

export const secretRef = (orgId: string, endpointId: string, column: 'secret_sealed' | 'previous_secret_sealed' = 'secret_sealed') =>
  ({ scope: orgId, table: 'webhook_endpoints', column, row: endpointId });

export interface WebhookServiceDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  destination: { allowLoopback: boolean; requireHttps: boolean };
}

export function createWebhookService(deps: WebhookServiceDeps) {
  const now = () => deps.clock.now();

  function view(r: EndpointRow): EndpointView {
    const rotating = r.previous_secret_expires_at && r.previous_secret_expires_at > now() ? r.previous_secret_expires_at : null;
    return {
      id: r.id,
      url: r.url,
      description: r.description,
      events: r.events,
      enabled: r.enabled,
      disabledReason: r.disabled_reason,
      consecutiveFailures: r.consecutive_failures,
      previousSecretExpiresAt: rotating?.toISOString() ?? null,
      createdAt: r.created_at.toISOString(),
      updatedAt: r.updated_at.toISOString(),
    };
  }

  const checkUrl = (url: string) => checkDestinationUrl(url, deps.destination).toString();

  async function load(tx: Tx, orgId: string, id: string, lock = false): Promise<EndpointRow> {
    const r = await one<EndpointRow>(
      tx,
      lock
        ? sql`select ${ENDPOINT_COLUMNS} from webhook_endpoints where org_id = ${orgId} and id = ${id} for update`
        : sql`select ${ENDPOINT_COLUMNS} from webhook_endpoints where org_id = ${orgId} and id = ${id}`,
    );
    if (!r) throw new AppError('not_found');
    return r;
  }

  return {
    /** The secret is in this answer and nowhere else: it is stored sealed. */
    async create(ctx: RequestContext, input: { url: string; events: Subscription[]; description?: string | undefined; enabled?: boolean | undefined }) {
      const org = requireOrg(ctx);
      const url = checkUrl(input.url);
      const id = newId();
      const secret = newWebhookSecret();
      const at = now().toISOString();
      const endpoint = await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        await lockOrgCap(tx, org.orgId, 'webhook_endpoints');
        const count = await one<{ n: number }>(tx, sql`select count(*)::int as n from webhook_endpoints where org_id = ${org.orgId}`);
        if ((count?.n ?? 0) >= MAX_ENDPOINTS) throw new AppError('conflict', `an organization has at most ${MAX_ENDPOINTS} webhook endpoints`);
        const sealed = await deps.sealer.seal(tx, secretRef(org.orgId, id), secret);
        const r = await one<EndpointRow>(
          tx,
          sql`insert into webhook_endpoints (org_id, id, url, description, events, enabled, disabled_reason, secret_sealed, created_by, created_at, updated_at)
              values (${org.orgId}, ${id}, ${url}, ${input.description ?? ''}, ${[...new Set(input.events)]}, ${input.enabled ?? true},
                ${input.enabled === false ? 'manual' : null}, ${sealed}, ${userActorOf(ctx).userId}, ${at}, ${at})
              returning ${ENDPOINT_COLUMNS}`,
        );
        await deps.audit.append(tx, org.orgId, ctx, { action: 'webhook.endpoint_created', target: { type: 'webhook_endpoint', id }, details: { destination: destinationOf(url), events: input.events } });
        return view(r as EndpointRow);
      });
      return { endpoint, secret };
    },

    async list(ctx: RequestContext): Promise<EndpointView[]> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), async (tx) =>
        (await rows<EndpointRow>(tx, sql`select ${ENDPOINT_COLUMNS} from webhook_endpoints where org_id = ${org.orgId} order by created_at, id`)).map(view),
      );
    },

    async get(ctx: RequestContext, id: string): Promise<EndpointView> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => view(await load(tx, org.orgId, id)));
    },

    async update(ctx: RequestContext, id: string, input: { url?: string | undefined; events?: Subscription[] | undefined; description?: string | undefined; enabled?: boolean | undefined }) {
      const org = requireOrg(ctx);
      const url = input.url === undefined ? undefined : checkUrl(input.url);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const current = await load(tx, org.orgId, id, true);
        // Re-enabling clears the failure streak: the owner says the receiver is back.
        const enabled = input.enabled ?? current.enabled;
        const reason = enabled ? null : input.enabled === false ? 'manual' : current.disabled_reason;
        const r = await one<EndpointRow>(
          tx,
          sql`update webhook_endpoints set url = ${url ?? current.url}, events = ${input.events ? [...new Set(input.events)] : current.events},
                description = ${input.description ?? current.description}, enabled = ${enabled}, disabled_reason = ${reason},
                consecutive_failures = case when ${enabled} and not enabled then 0 else consecutive_failures end,
                updated_at = ${now().toISOString()}
              where org_id = ${org.orgId} and id = ${id} returning ${ENDPOINT_COLUMNS}`,
        );
        // Deliveries left pending while it was off go out again: the worker passes over an org
        // only while it is listed as due, and the pass that found nothing to send unlisted it.
        if (enabled && !current.enabled) await markOrgDue(tx, org.orgId, now().toISOString());
        const details: Record<string, string | boolean | string[]> = {};
        if (url !== undefined) details.destination = destinationOf(url);
        if (input.events) details.events = input.events;
        if (input.enabled !== undefined) details.enabled = input.enabled;
        await deps.audit.append(tx, org.orgId, ctx, { action: 'webhook.endpoint_updated', target: { type: 'webhook_endpoint', id }, details });
        return view(r as EndpointRow);
      });
    },

    async remove(ctx: RequestContext, id: string): Promise<void> {
      const org = requireOrg(ctx);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const n = await exec(tx, sql`delete from webhook_endpoints where org_id = ${org.orgId} and id = ${id}`);
        if (n !== 1) throw new AppError('not_found');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'webhook.endpoint_deleted', target: { type: 'webhook_endpoint', id } });
      });
    },

    /**
     * A new secret, shown once; the previous one keeps signing (a second signature in the same
     * header) for ROTATION_OVERLAP_SECONDS so receivers can switch without missing an event.
     */
    async rotateSecret(ctx: RequestContext, id: string): Promise<{ secret: string; previousSecretExpiresAt: string }> {
      const org = requireOrg(ctx);
      const secret = newWebhookSecret();
      const until = new Date(now().getTime() + ROTATION_OVERLAP_SECONDS * 1000);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        await load(tx, org.orgId, id, true);
        const current = await one<{ secret_sealed: string }>(tx, sql`select secret_sealed from webhook_endpoints where org_id = ${org.orgId} and id = ${id}`);
        const previous = await deps.sealer.open(tx, secretRef(org.orgId, id), (current as { secret_sealed: string }).secret_sealed);
        // Both are sealed anew: each sealed value is bound to its column.
        const sealedPrevious = await deps.sealer.seal(tx, secretRef(org.orgId, id, 'previous_secret_sealed'), previous);
        const sealed = await deps.sealer.seal(tx, secretRef(org.orgId, id), secret);
        await exec(
          tx,
          sql`update webhook_endpoints set secret_sealed = ${sealed}, previous_secret_sealed = ${sealedPrevious},
                previous_secret_expires_at = ${until.toISOString()}, updated_at = ${now().toISOString()}
              where org_id = ${org.orgId} and id = ${id}`,
        );
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'webhook.secret_rotated', target: { type: 'webhook_endpoint', id }, details: { previousSecretExpiresAt: until.toISOString() },
        });
      });
      return { secret, previousSecretExpiresAt: until.toISOString() };
    },

    /** The delivery log of an endpoint, newest first, each with its attempts. */
    async deliveries(ctx: RequestContext, endpointId: string, limit: number): Promise<DeliveryView[]> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        await load(tx, org.orgId, endpointId);
        const list = await rows<{
          id: string; message_id: string; event_type: DeliveryView['eventType']; status: DeliveryView['status']; next_attempt_at: Date | null;
          created_at: Date; completed_at: Date | null;
          attempts: { attempt: number; at: string; status: number | null; latency_ms: number; error: string | null }[] | null;
        }>(
          tx,
          sql`select d.id, d.message_id, d.event_type, d.status, d.next_attempt_at, d.created_at, d.completed_at,
                (select json_agg(json_build_object('attempt', a.attempt, 'at', a.at, 'status', a.status, 'latency_ms', a.latency_ms, 'error', a.error)
                        order by a.attempt)
                 from webhook_attempts a where a.org_id = d.org_id and a.delivery_id = d.id) as attempts
              from webhook_deliveries d where d.org_id = ${org.orgId} and d.endpoint_id = ${endpointId}
              order by d.created_at desc, d.id limit ${limit}`,
        );
        return list.map((d) => ({
          id: d.id,
          messageId: d.message_id,
          eventType: d.event_type,
          status: d.status,
          attempts: (d.attempts ?? []).map((a) => ({ attempt: a.attempt, at: new Date(a.at).toISOString(), status: a.status, latencyMs: a.latency_ms, error: a.error })),
          nextAttemptAt: d.status === 'pending' ? (d.next_attempt_at?.toISOString() ?? null) : null,
          createdAt: d.created_at.toISOString(),
          completedAt: d.completed_at?.toISOString() ?? null,
        }));
      });
    },

    /**
     * Sends a delivered or failed event again, now, as a new delivery with the same webhook-id
     * (receivers that already applied it recognise it). The endpoint must be enabled.
     */
    async redeliver(ctx: RequestContext, endpointId: string, deliveryId: string): Promise<{ deliveryId: string }> {
      const org = requireOrg(ctx);
      const id = newId();
      const at = now().toISOString();
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const endpoint = await load(tx, org.orgId, endpointId);
        if (!endpoint.enabled) throw new AppError('conflict', 'the endpoint is disabled: enable it first');
        const n = await exec(
          tx,
          sql`insert into webhook_deliveries (org_id, id, endpoint_id, message_id, event_type, payload, status, attempts, next_attempt_at, created_at)
              select org_id, ${id}, endpoint_id, message_id, event_type, payload, 'pending', 0, ${at}::timestamptz, ${at}::timestamptz
              from webhook_deliveries where org_id = ${org.orgId} and endpoint_id = ${endpointId} and id = ${deliveryId} and status <> 'pending'`,
        );
        if (n !== 1) throw new AppError('not_found', 'no finished delivery with that id on this endpoint');
        await markOrgDue(tx, org.orgId, at);
        await deps.audit.append(tx, org.orgId, ctx, { action: 'webhook.redelivered', target: { type: 'webhook_delivery', id: deliveryId }, details: { newDeliveryId: id } });
      });
      return { deliveryId: id };
    },
  };
}

/**
 * What the audit trail keeps of a webhook URL: its origin. Receivers often carry a credential in
 * the path or query (Slack-style URLs), and the trail is readable with audit:read, keys included.
 */
function destinationOf(url: string): string {
  return new URL(url).origin;
}

export type WebhookService = ReturnType<typeof createWebhookService>;
