import { sql } from 'kysely';
import { newId, type FieldRef } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { isUuid } from '../../kernel/ids.js';
import { type Database, exec, lockOrgCap, one, rows, type Tx } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import type { Receipt, SourceView } from './responses.js';
import { BUILTIN_PROVIDERS, rejectDelivery, type InboundEvent, type InboundHeaders, type InboundProvider } from './providers.js';

/** A verified, first-seen event as the handler receives it. */
export interface AppliedEvent extends InboundEvent {
  sourceId: string;
  provider: string;
}

/**
 * The extension point for what an event does: runs once per event id, in the transaction that
 * records the id and its audit event. Throwing rolls all three back, so the provider's retry
 * applies it again (an AppError answers 4xx, anything else 500).
 */
export type InboundHandler = (tx: Tx, orgId: string, event: AppliedEvent) => Promise<void>;

interface SourceRow {
  id: string;
  name: string;
  provider: string;
  created_by: string;
  created_at: Date;
}

/** An org's sources are a handful of provider accounts; the cap bounds what one org can store. */
export const MAX_SOURCES_PER_ORG = 50;

export const receivePath = (orgId: string, sourceId: string): string => `/api/inbound/${orgId}/${sourceId}`;

const secretRef = (orgId: string, sourceId: string): FieldRef => ({ scope: orgId, table: 'inbound_sources', column: 'secret_sealed', row: sourceId });

const view = (orgId: string, r: SourceRow): SourceView => ({
  id: r.id, name: r.name, provider: r.provider, createdBy: r.created_by, createdAt: r.created_at.toISOString(), receivePath: receivePath(orgId, r.id),
});

export interface InboundDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  /** Defaults to BUILTIN_PROVIDERS. */
  providers?: readonly InboundProvider[];
  /** Applies a first-seen event beyond its audit record; none by default. */
  onEvent?: InboundHandler;
}

export function createInboundService(deps: InboundDeps) {
  const providers = new Map((deps.providers ?? BUILTIN_PROVIDERS).map((p) => [p.name, p]));

  return {
    providerNames: (): string[] => [...providers.keys()],

    acceptsSecret: (provider: string, secret: string): boolean => providers.get(provider)?.acceptsSecret(secret) ?? false,

    async list(ctx: RequestContext): Promise<SourceView[]> {
      const org = requireOrg(ctx);
      const list = await deps.db.withTenant(bindingOf(ctx), (tx) =>
        rows<SourceRow>(tx, sql`select id, name, provider, created_by, created_at from inbound_sources
                                where org_id = ${org.orgId} and deleted_at is null order by created_at, id`),
      );
      return list.map((r) => view(org.orgId, r));
    },

    async create(ctx: RequestContext, input: { name: string; provider: string; secret: string }): Promise<SourceView> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      const provider = providers.get(input.provider);
      // The route validates both; this is the service's own guard for other callers.
      if (!provider || !provider.acceptsSecret(input.secret)) throw new AppError('validation_failed', 'unknown provider or a secret of the wrong shape');
      const id = newId();
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        await lockOrgCap(tx, org.orgId, 'inbound_sources');
        const count = await one<{ n: number }>(tx, sql`select count(*)::int as n from inbound_sources where org_id = ${org.orgId} and deleted_at is null`);
        if ((count?.n ?? 0) >= MAX_SOURCES_PER_ORG) throw new AppError('conflict', `an organization has at most ${MAX_SOURCES_PER_ORG} inbound sources`);
        const sealed = await deps.sealer.seal(tx, secretRef(org.orgId, id), input.secret);
        const r = await one<SourceRow>(
          tx,
          sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
              values (${org.orgId}, ${id}, ${provider.name}, ${input.name}, ${sealed}, ${user.userId}, ${deps.clock.now().toISOString()})
              returning id, name, provider, created_by, created_at`,
        );
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'inbound.source_created', target: { type: 'inbound_source', id }, details: { provider: provider.name, name: input.name },
        });
        return view(org.orgId, r as SourceRow);
      });
    },

    async remove(ctx: RequestContext, sourceId: string): Promise<void> {
      const org = requireOrg(ctx);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        // The secret goes with the source; the row stays for the trail and the applied ids.
        const n = await exec(tx, sql`update inbound_sources set deleted_at = ${deps.clock.now().toISOString()}, secret_sealed = ''
                                     where org_id = ${org.orgId} and id = ${sourceId} and deleted_at is null`);
        if (n !== 1) throw new AppError('not_found');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'inbound.source_deleted', target: { type: 'inbound_source', id: sourceId } });
      });
    },

    /**
     * One delivery from a provider. Bound to the org named in the url, so another org's source
     * is invisible (RLS); verified before the body is parsed; the event id is recorded and the
     * event applied in one transaction. The key (org, source, event id) is unique: a concurrent
     * second delivery waits for the first to commit, then conflicts and applies nothing.
     */
    async receive(ctx: RequestContext, orgId: string, sourceId: string, delivery: { headers: InboundHeaders; body: string }): Promise<Receipt> {
      if (!isUuid(orgId) || !isUuid(sourceId)) rejectDelivery('unknown_source');
      return deps.db.withTenant({ orgId }, async (tx) => {
        const source = await one<{ provider: string; secret_sealed: string }>(
          tx,
          // An org being deleted (or shredded) takes no events: its source is as unknown as a deleted one.
          sql`select s.provider, s.secret_sealed from inbound_sources s join organizations o on o.org_id = s.org_id
              where s.org_id = ${orgId} and s.id = ${sourceId} and s.deleted_at is null and o.purge_after is null and o.shredded_at is null`,
        );
        const provider = source ? providers.get(source.provider) : undefined;
        if (!source || !provider) return rejectDelivery('unknown_source');
        const secret = await deps.sealer.open(tx, secretRef(orgId, sourceId), source.secret_sealed);
        const now = deps.clock.now();
        const event = provider.verify(delivery.headers, delivery.body, secret, now);
        const inserted = await one(
          tx,
          sql`insert into inbound_events (org_id, source_id, event_id, type, received_at)
              values (${orgId}, ${sourceId}, ${event.eventId}, ${event.type}, ${now.toISOString()})
              on conflict do nothing returning event_id`,
        );
        if (!inserted) return { received: true, duplicate: true };
        await deps.audit.append(tx, orgId, ctx, {
          action: 'inbound.received',
          actor: { type: 'inbound_source', id: sourceId },
          target: { type: 'inbound_source', id: sourceId },
          details: { provider: provider.name, eventId: event.eventId, type: event.type },
        });
        await deps.onEvent?.(tx, orgId, { ...event, sourceId, provider: provider.name });
        return { received: true, duplicate: false };
      });
    },
  };
}

export type InboundService = ReturnType<typeof createInboundService>;
