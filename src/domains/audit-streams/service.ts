import { sql } from 'kysely';
import { newId, type FieldRef } from '../../crypto/index.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import { type Database, exec, lockOrgCap, one, rows, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { newWebhookSecret } from '../webhooks/index.js';
import { checkStreamUrl, checkSyslogTarget, type StreamDestinationOptions } from './destination.js';
import type { StreamEvent } from './format.js';
import type { StreamOutcome } from './outcome.js';
import type { StreamView } from './responses.js';
import type { StreamSender, StreamTarget } from './sender.js';

/** Streams per org: a SIEM or two, and a spare while moving between them. */
export const MAX_STREAMS = 5;
/** How long the previous secret keeps signing after a rotation (as for webhooks). */
export const STREAM_ROTATION_OVERLAP_SECONDS = 24 * 3600;
/** Failed attempts in a row after which a stream's status is `failing` (about two minutes of backoff). */
export const FAILING_AFTER = 5;

export const streamSecretRef = (orgId: string, streamId: string, column: 'secret_sealed' | 'previous_secret_sealed' | 'auth_header_sealed' = 'secret_sealed'): FieldRef =>
  ({ scope: orgId, table: 'audit_streams', column, row: streamId });

export interface StreamRow {
  id: string;
  kind: 'https' | 'syslog';
  url: string | null;
  host: string | null;
  port: number | null;
  tls: boolean;
  description: string;
  enabled: boolean;
  has_authorization: boolean;
  previous_secret_expires_at: Date | null;
  cursor_seq: number | string;
  consecutive_failures: number;
  last_error: string | null;
  last_attempt_at: Date | null;
  last_delivered_at: Date | null;
  next_attempt_at: Date | null;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = sql`s.id, s.kind, s.url, s.host, s.port, s.tls, s.description, s.enabled, s.auth_header_sealed is not null as has_authorization,
  s.previous_secret_expires_at, s.cursor_seq,
  s.consecutive_failures, s.last_error, s.last_attempt_at, s.last_delivered_at, s.next_attempt_at, s.created_at, s.updated_at`;

export type CreateInput =
  | { kind: 'https'; url: string; authorization?: string | undefined; description?: string | undefined; enabled?: boolean | undefined; from?: 'now' | 'start' | undefined }
  | { kind: 'syslog'; host: string; port: number; tls?: boolean | undefined; description?: string | undefined; enabled?: boolean | undefined; from?: 'now' | 'start' | undefined };

export interface UpdateInput {
  url?: string | undefined;
  /** https: a new Authorization header value; null removes it. */
  authorization?: string | null | undefined;
  host?: string | undefined;
  port?: number | undefined;
  tls?: boolean | undefined;
  description?: string | undefined;
  enabled?: boolean | undefined;
}

export interface StreamServiceDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  sender: StreamSender;
  destination: StreamDestinationOptions;
  /** Told when an org's streams may have work now (a worker in this process looks at once). */
  onChange?: (orgId: string) => void;
}

/** Lists the org for the worker, due now (or keeps an earlier time). */
export async function markStreamOrgDue(tx: Tx, orgId: string, at: string): Promise<void> {
  await exec(
    tx,
    sql`insert into audit_stream_orgs (org_id, check_at) values (${orgId}, ${at}::timestamptz)
        on conflict (org_id) do update set check_at = least(audit_stream_orgs.check_at, excluded.check_at)`,
  );
}

/**
 * What the trail keeps of a destination: an https URL's origin (a receiver's URL often carries a
 * token in its path or query, and the trail is readable with audit:read), a syslog host and port.
 */
function destinationOf(r: { kind: string; url: string | null; host: string | null; port: number | null; tls: boolean }): string {
  if (r.kind === 'https') return new URL(r.url ?? '').origin;
  const host = (r.host ?? '').includes(':') ? `[${r.host ?? ''}]` : (r.host ?? '');
  return `${r.tls ? 'syslog+tls' : 'syslog'}://${host}:${r.port ?? 0}`;
}

export function createAuditStreamService(deps: StreamServiceDeps) {
  const now = () => deps.clock.now();

  function view(r: StreamRow & { head_seq: number | string | null; oldest_at: Date | null }): StreamView {
    const cursor = Number(r.cursor_seq);
    const lagEvents = Math.max(0, Number(r.head_seq ?? 0) - cursor);
    const rotating = r.previous_secret_expires_at && r.previous_secret_expires_at > now() ? r.previous_secret_expires_at : null;
    const status = !r.enabled ? 'disabled' : r.consecutive_failures === 0 ? 'ok' : r.consecutive_failures >= FAILING_AFTER ? 'failing' : 'retrying';
    return {
      id: r.id, kind: r.kind, url: r.url, host: r.host, port: r.port, tls: r.kind === 'https' ? true : r.tls,
      description: r.description, enabled: r.enabled, hasAuthorization: r.has_authorization, previousSecretExpiresAt: rotating?.toISOString() ?? null,
      status, lastError: r.last_error, consecutiveFailures: r.consecutive_failures,
      lagEvents,
      lagSeconds: lagEvents > 0 && r.oldest_at ? Math.max(0, Math.floor((now().getTime() - r.oldest_at.getTime()) / 1000)) : 0,
      cursorSeq: cursor,
      lastDeliveredAt: r.last_delivered_at?.toISOString() ?? null,
      lastAttemptAt: r.last_attempt_at?.toISOString() ?? null,
      nextAttemptAt: r.consecutive_failures > 0 ? (r.next_attempt_at?.toISOString() ?? null) : null,
      createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
    };
  }

  /** Streams with their lag: the head of the org's chain and the time of the oldest event not yet acknowledged. */
  async function read(tx: Tx, orgId: string, id: string | null): Promise<StreamView[]> {
    const list = await rows<StreamRow & { head_seq: number | string | null; oldest_at: Date | null }>(
      tx,
      sql`select ${COLUMNS}, h.seq as head_seq,
            (select e.at from audit_events e where e.org_id = s.org_id and e.seq = s.cursor_seq + 1) as oldest_at
          from audit_streams s left join audit_heads h on h.org_id = s.org_id
          where s.org_id = ${orgId} and (${id}::uuid is null or s.id = ${id}::uuid)
          order by s.created_at, s.id`,
    );
    return list.map(view);
  }

  async function load(tx: Tx, orgId: string, id: string): Promise<StreamRow> {
    const r = await one<StreamRow>(tx, sql`select ${COLUMNS} from audit_streams s where s.org_id = ${orgId} and s.id = ${id} for update`);
    if (!r) throw new AppError('not_found');
    return r;
  }

  async function readOne(tx: Tx, orgId: string, id: string): Promise<StreamView> {
    const [v] = await read(tx, orgId, id);
    if (!v) throw new AppError('not_found');
    return v;
  }

  return {
    /** https: the secret is in this answer and nowhere else (stored sealed). */
    async create(ctx: RequestContext, input: CreateInput): Promise<{ stream: StreamView; secret: string | null }> {
      const org = requireOrg(ctx);
      const id = newId();
      const at = now().toISOString();
      const dest = input.kind === 'https'
        ? { kind: 'https' as const, url: checkStreamUrl(input.url, deps.destination), host: null, port: null, tls: true }
        : (() => {
          const tls = input.tls ?? true;
          const t = checkSyslogTarget(input.host, input.port, tls, deps.destination);
          return { kind: 'syslog' as const, url: null, host: t.host, port: t.port, tls };
        })();
      const secret = dest.kind === 'https' ? newWebhookSecret() : null;
      const enabled = input.enabled ?? true;
      const stream = await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        await lockOrgCap(tx, org.orgId, 'audit_streams');
        const count = await one<{ n: number }>(tx, sql`select count(*)::int as n from audit_streams where org_id = ${org.orgId}`);
        if ((count?.n ?? 0) >= MAX_STREAMS) throw new AppError('conflict', `an organization has at most ${MAX_STREAMS} audit streams`);
        // From now: the events after the head as it is; this creation's own event is the first one sent.
        const head = await one<{ seq: number | string }>(tx, sql`select seq from audit_heads where org_id = ${org.orgId}`);
        const cursor = input.from === 'start' ? 0 : Number(head?.seq ?? 0);
        const sealed = secret ? await deps.sealer.seal(tx, streamSecretRef(org.orgId, id), secret) : null;
        const authorization = input.kind === 'https' && input.authorization ? await deps.sealer.seal(tx, streamSecretRef(org.orgId, id, 'auth_header_sealed'), input.authorization) : null;
        await exec(
          tx,
          sql`insert into audit_streams (org_id, id, kind, url, host, port, tls, description, enabled, secret_sealed, auth_header_sealed, cursor_seq,
                created_by, created_at, updated_at)
              values (${org.orgId}, ${id}, ${dest.kind}, ${dest.url}, ${dest.host}, ${dest.port}, ${dest.tls}, ${input.description ?? ''}, ${enabled},
                ${sealed}, ${authorization}, ${cursor}, ${userActorOf(ctx).userId}, ${at}, ${at})`,
        );
        if (enabled) await markStreamOrgDue(tx, org.orgId, at);
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'audit.stream_created', target: { type: 'audit_stream', id },
          details: { kind: dest.kind, destination: destinationOf(dest), enabled, from: input.from ?? 'now', authorization: authorization !== null },
        });
        return readOne(tx, org.orgId, id);
      });
      deps.onChange?.(org.orgId);
      return { stream, secret };
    },

    async list(ctx: RequestContext): Promise<StreamView[]> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), (tx) => read(tx, org.orgId, null));
    },

    async get(ctx: RequestContext, id: string): Promise<StreamView> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), (tx) => readOne(tx, org.orgId, id));
    },

    async update(ctx: RequestContext, id: string, input: UpdateInput): Promise<StreamView> {
      const org = requireOrg(ctx);
      const result = await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const current = await load(tx, org.orgId, id);
        const touchesSyslog = input.host !== undefined || input.port !== undefined || input.tls !== undefined;
        if (current.kind === 'https' && touchesSyslog) throw new AppError('validation_failed', 'host, port and tls are for syslog streams');
        if (current.kind === 'syslog' && (input.url !== undefined || input.authorization !== undefined)) {
          throw new AppError('validation_failed', 'url and authorization are for https streams');
        }
        let url = current.url;
        let host = current.host;
        let port = current.port;
        let tls = current.tls;
        if (input.url !== undefined) url = checkStreamUrl(input.url, deps.destination);
        if (touchesSyslog) {
          tls = input.tls ?? current.tls;
          const t = checkSyslogTarget(input.host ?? current.host ?? '', input.port ?? current.port ?? 0, tls, deps.destination);
          host = t.host;
          port = t.port;
        }
        const moved = url !== current.url || host !== current.host || port !== current.port || tls !== current.tls;
        // A header meant for one receiver never goes to another: a new URL drops it unless one is sent with it.
        const authorization = input.authorization !== undefined
          ? (input.authorization === null ? null : await deps.sealer.seal(tx, streamSecretRef(org.orgId, id, 'auth_header_sealed'), input.authorization))
          : moved && current.has_authorization ? null : undefined;
        const enabled = input.enabled ?? current.enabled;
        // A new destination or a stream switched back on starts with a clean slate and is tried at once.
        const fresh = moved || (enabled && !current.enabled);
        await exec(
          tx,
          sql`update audit_streams set url = ${url}, host = ${host}, port = ${port}, tls = ${tls},
                description = ${input.description ?? current.description}, enabled = ${enabled},
                auth_header_sealed = case when ${authorization !== undefined} then ${authorization ?? null} else auth_header_sealed end,
                consecutive_failures = case when ${fresh} then 0 else consecutive_failures end,
                last_error = case when ${fresh} then null else last_error end,
                next_attempt_at = case when ${fresh} then null else next_attempt_at end,
                updated_at = ${now().toISOString()}
              where org_id = ${org.orgId} and id = ${id}`,
        );
        if (enabled) await markStreamOrgDue(tx, org.orgId, now().toISOString());
        const details: Record<string, string | boolean> = {};
        if (moved) details.destination = destinationOf({ kind: current.kind, url, host, port, tls });
        if (input.description !== undefined) details.description = input.description;
        if (input.enabled !== undefined) details.enabled = input.enabled;
        if (authorization !== undefined) details.authorization = authorization === null ? 'removed' : 'replaced';
        await deps.audit.append(tx, org.orgId, ctx, { action: 'audit.stream_updated', target: { type: 'audit_stream', id }, details });
        return readOne(tx, org.orgId, id);
      });
      deps.onChange?.(org.orgId);
      return result;
    },

    async remove(ctx: RequestContext, id: string): Promise<void> {
      const org = requireOrg(ctx);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const gone = await one<{ kind: string; url: string | null; host: string | null; port: number | null; tls: boolean }>(
          tx,
          sql`delete from audit_streams where org_id = ${org.orgId} and id = ${id} returning kind, url, host, port, tls`,
        );
        if (!gone) throw new AppError('not_found');
        await exec(tx, sql`delete from audit_stream_orgs where org_id = ${org.orgId} and not exists (select 1 from audit_streams where org_id = ${org.orgId})`);
        await deps.audit.append(tx, org.orgId, ctx, { action: 'audit.stream_deleted', target: { type: 'audit_stream', id }, details: { destination: destinationOf(gone) } });
      });
    },

    /** https: a new secret, shown once; the previous one keeps signing for STREAM_ROTATION_OVERLAP_SECONDS. */
    async rotateSecret(ctx: RequestContext, id: string): Promise<{ secret: string; previousSecretExpiresAt: string }> {
      const org = requireOrg(ctx);
      const secret = newWebhookSecret();
      const until = new Date(now().getTime() + STREAM_ROTATION_OVERLAP_SECONDS * 1000);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const current = await load(tx, org.orgId, id);
        if (current.kind !== 'https') throw new AppError('conflict', 'a syslog stream has no signing secret');
        const stored = await one<{ secret_sealed: string }>(tx, sql`select secret_sealed from audit_streams where org_id = ${org.orgId} and id = ${id}`);
        const previous = await deps.sealer.open(tx, streamSecretRef(org.orgId, id), stored?.secret_sealed ?? '');
        // Both sealed anew: each sealed value is bound to its column.
        const sealedPrevious = await deps.sealer.seal(tx, streamSecretRef(org.orgId, id, 'previous_secret_sealed'), previous);
        const sealed = await deps.sealer.seal(tx, streamSecretRef(org.orgId, id), secret);
        await exec(
          tx,
          sql`update audit_streams set secret_sealed = ${sealed}, previous_secret_sealed = ${sealedPrevious},
                previous_secret_expires_at = ${until.toISOString()}, updated_at = ${now().toISOString()}
              where org_id = ${org.orgId} and id = ${id}`,
        );
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'audit.stream_secret_rotated', target: { type: 'audit_stream', id }, details: { previousSecretExpiresAt: until.toISOString() },
        });
      });
      return { secret, previousSecretExpiresAt: until.toISOString() };
    },

    /**
     * Sends one synthetic event (seq 0: not in the chain; action audit.stream_test) to the
     * destination now, enabled or not, and says what came back. The cursor does not move.
     */
    async sendTest(ctx: RequestContext, id: string): Promise<StreamOutcome> {
      const org = requireOrg(ctx);
      const target = await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const s = await one<SealedTarget>(
          tx,
          sql`select kind, url, host, port, tls, secret_sealed, previous_secret_sealed, previous_secret_expires_at, auth_header_sealed
              from audit_streams where org_id = ${org.orgId} and id = ${id}`,
        );
        if (!s) throw new AppError('not_found');
        return targetOf(tx, deps.sealer, org.orgId, id, s, now());
      });
      const event: StreamEvent = {
        orgId: org.orgId, seq: 0, id: newId(), at: now().toISOString(), actor: { type: 'system', id: 'audit-stream-test', role: null },
        action: 'audit.stream_test', target: { type: 'audit_stream', id }, result: 'success', ip: '', userAgent: '', requestId: ctx.requestId, personal: 'clear',
        details: { test: true }, hash: '',
      };
      const outcome = await deps.sender.send(target, [event], `test_${event.id.replace(/-/g, '')}`);
      await deps.db.withTenant(bindingOf(ctx), (tx) => deps.audit.append(tx, org.orgId, ctx, {
        action: 'audit.stream_tested', target: { type: 'audit_stream', id }, details: { ok: outcome.ok, error: outcome.error },
      }));
      return outcome;
    },
  };
}

/** A stream's row as targetOf needs it, its secrets sealed. */
export interface SealedTarget {
  kind: 'https' | 'syslog'; url: string | null; host: string | null; port: number | null; tls: boolean; secret_sealed: string | null;
  previous_secret_sealed: string | null; previous_secret_expires_at: Date | null; auth_header_sealed: string | null;
}

/** A stream's destination with its open secrets (the previous one too while it still signs) and Authorization header. */
export async function targetOf(tx: Tx, sealer: Sealer, orgId: string, id: string, s: SealedTarget, now: Date): Promise<StreamTarget> {
  if (s.kind === 'syslog') return { kind: 'syslog', host: s.host ?? '', port: s.port ?? 0, tls: s.tls };
  const secrets = [await sealer.open(tx, streamSecretRef(orgId, id), s.secret_sealed ?? '')];
  if (s.previous_secret_sealed && s.previous_secret_expires_at && s.previous_secret_expires_at > now) {
    secrets.push(await sealer.open(tx, streamSecretRef(orgId, id, 'previous_secret_sealed'), s.previous_secret_sealed));
  }
  const authorization = s.auth_header_sealed ? await sealer.open(tx, streamSecretRef(orgId, id, 'auth_header_sealed'), s.auth_header_sealed) : null;
  return { kind: 'https', url: s.url ?? '', secrets, authorization };
}

export type AuditStreamService = ReturnType<typeof createAuditStreamService>;
