import { sql, type RawBuilder } from 'kysely';
import { newId, randomToken, sha256Hex, type FieldRef } from '../../crypto/index.js';
import type { Sealer } from '../keys/sealer.js';
import type { AuditAction } from '../../kernel/audit-actions.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { execWithNext, one, type Database, type Tx } from '../../db/database.js';
import { InvariantError } from '../../kernel/errors.js';
import { eventHash, GENESIS_HASH, headMac, headMacProblem, type ChainedEvent, type ChainKeys } from './chain.js';

export type AuditResult = 'success' | 'denied' | 'failure';
export type AuditDetails = Record<string, string | number | boolean | null | string[]>;

export interface AuditEventInput {
  action: AuditAction;
  target?: { type: string; id: string } | undefined;
  result?: AuditResult;
  details?: AuditDetails;
  /** Overrides the request actor, e.g. the user a login attempt is about. */
  actor?: { type: string; id: string | null; role?: string | null };
  /**
   * Keep the details, address and user agent in clear: only for events that carry no personal
   * data and must stay readable once the org's keys are gone (their destruction, the shredding).
   */
  clear?: true;
}

/** Where an event's personal part is sealed: the org's data key, bound to the event. */
export const personalRef = (orgId: string, eventId: string): FieldRef => ({ scope: orgId, table: 'audit_events', column: 'personal_sealed', row: eventId });

/**
 * What the chain holds in `details` for a sealed event: the digest of the personal part's
 * plaintext, which carries a random salt (an address or an email cannot be guessed back from it).
 * Over the plaintext, not the ciphertext: a data-key rotation re-seals the part and the chain
 * still matches; the reader checks the digest after opening.
 */
export const personalDigest = (plaintext: string): string => `sha256:${sha256Hex(plaintext)}`;

/** The personal part of an event, as sealed. */
export interface PersonalPart {
  salt: string;
  ip: string;
  userAgent: string;
  details: AuditDetails;
}

export interface AuditWriter {
  /**
   * Appends an event to `orgId`'s chain inside the caller's transaction, which must be bound
   * to that org: the change and its evidence commit or roll back together.
   */
  append(tx: Tx, orgId: string, ctx: RequestContext, event: AuditEventInput): Promise<void>;
  /** For refusals, which change nothing: its own transaction, errors logged not thrown. */
  appendStandalone(orgId: string, ctx: RequestContext, event: AuditEventInput): Promise<void>;
}

export function createAuditWriter(deps: {
  db: Database;
  clock: Clock;
  keys: ChainKeys;
  /** Seals each event's personal part (details, address, user agent) with the org's data key. */
  sealer: Sealer;
  onError: (err: unknown) => void;
  /**
   * More data-modifying sub-statements (`name as (…)`, comma-separated) to run in the append's
   * own statement (the webhook outbox): they commit or roll back with the change and its
   * evidence, and cost no extra round trip. Null for events that need none.
   */
  alsoWrite?: (event: ChainedEvent) => RawBuilder<unknown> | null;
  /** Told the org of each append, before its transaction commits (the checkpointer: checkpoints.ts). */
  onAppend?: (orgId: string) => void;
}): AuditWriter {
  const append: AuditWriter['append'] = async (tx, orgId, ctx, input) => {
    const id = newId();
    const details = input.details ?? {};
    // The personal part leaves the row's clear columns: the chain covers its sealed form through
    // the digest, so verification needs no data key, and destroying the key (shredding, erasure)
    // leaves a chain that still verifies with nothing personal readable. Sealed before the head
    // is locked: a key read on a cold cache must not hold up the org's other writers.
    const personal = input.clear ? null : JSON.stringify({ salt: randomToken(16), ip: ctx.ip, userAgent: ctx.userAgent, details } satisfies PersonalPart);
    const sealed = personal === null ? null : await deps.sealer.seal(tx, personalRef(orgId, id), personal);
    // Serializes appends per org on the head row: the chain has exactly one next position. The
    // upsert creates the head on first use and, either way, locks it and returns it (one round trip).
    const keyId = deps.keys.activeKeyId;
    const genesis = { org_id: orgId, seq: 0, hash: GENESIS_HASH };
    const head = await one<{ seq: number | string; hash: string; key_id: string; mac: string }>(
      tx,
      sql`insert into audit_heads (org_id, seq, hash, key_id, mac)
          values (${orgId}, 0, ${GENESIS_HASH}, ${keyId}, ${headMac(deps.keys, keyId, genesis)})
          on conflict (org_id) do update set seq = audit_heads.seq
          returning seq, hash, key_id, mac`,
    );
    if (!head) throw new Error('audit head missing: transaction is not bound to the org');
    // Extending a head that fails its MAC would launder it: after the last events were deleted
    // and the head set back, the next event would link onto the earlier one and carry a valid
    // MAC again. No audit, no change: the mutation fails until an operator has looked.
    const current = { org_id: orgId, seq: Number(head.seq), hash: head.hash, key_id: head.key_id, mac: head.mac };
    const problem = headMacProblem(deps.keys, current);
    if (problem) throw new InvariantError(`audit chain of org ${orgId}: ${problem}; refusing to extend it (run palisade audit verify)`);
    const actor = input.actor ?? actorOf(ctx);
    const event: ChainedEvent = {
      org_id: orgId,
      seq: Number(head.seq) + 1,
      id,
      at: deps.clock.now().toISOString(),
      actor_type: actor.type,
      actor_id: actor.id,
      actor_role: actor.role ?? null,
      action: input.action,
      target_type: input.target?.type ?? null,
      target_id: input.target?.id ?? null,
      result: input.result ?? 'success',
      // A clear event keeps no address or user agent either: they are personal (review of 034, finding 4).
      ip: '',
      user_agent: '',
      request_id: ctx.requestId,
      details: personal !== null ? { sealed: personalDigest(personal) } : details,
      key_id: keyId,
    };
    const hash = eventHash(deps.keys, head.hash, event);
    const mac = headMac(deps.keys, keyId, { org_id: orgId, seq: event.seq, hash });
    // The outbox builds its payload from the event as it happened, not as the chain stores it.
    const extra = deps.alsoWrite?.({ ...event, ip: ctx.ip, user_agent: ctx.userAgent, details }) ?? null;
    // The event and the head move together, in one statement, written with the transaction's
    // next one (usually its COMMIT): the head stays locked one round trip less, which is what
    // bounds an org's writers (docs/performance.md). Its failure fails that statement, and the
    // COMMIT that carried it rolls the change back with it.
    await execWithNext(
      tx,
      sql`with appended as (
            insert into audit_events (org_id, seq, id, at, actor_type, actor_id, actor_role, action, target_type, target_id,
              result, ip, user_agent, request_id, details, personal_sealed, key_id, prev_hash, hash)
            values (${event.org_id}, ${event.seq}, ${event.id}, ${event.at}, ${event.actor_type}, ${event.actor_id},
              ${event.actor_role}, ${event.action}, ${event.target_type}, ${event.target_id}, ${event.result}, ${event.ip},
              ${event.user_agent}, ${event.request_id}, ${JSON.stringify(event.details)}::jsonb, ${sealed}, ${event.key_id}, ${head.hash}, ${hash})
            returning seq)${extra ? sql`, ${extra}` : sql``}
          update audit_heads set seq = (select seq from appended), hash = ${hash}, key_id = ${keyId}, mac = ${mac} where org_id = ${orgId}`,
    );
    deps.onAppend?.(orgId);
    ctx.audited.push(input.action);
  };
  return {
    append,
    async appendStandalone(orgId, ctx, event) {
      try {
        await deps.db.withTenant({ orgId }, (tx) => append(tx, orgId, ctx, event));
      } catch (err) {
        deps.onError(err);
      }
    },
  };
}

function actorOf(ctx: RequestContext): { type: string; id: string | null; role: string | null } {
  if (ctx.actor.type === 'user') return { type: 'user', id: ctx.actor.userId, role: ctx.org?.roleLabel ?? null };
  if (ctx.actor.type === 'system') return { type: 'system', id: ctx.actor.name, role: null };
  if (ctx.actor.type === 'api_key') return { type: 'api_key', id: ctx.actor.keyId, role: ctx.org?.roleLabel ?? null };
  return { type: 'anonymous', id: null, role: null };
}
