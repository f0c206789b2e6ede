import { sql } from 'kysely';
import { newId, SealedValueError, type Keyring } from '../../crypto/index.js';
import { exec, one, rows, type Database, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { systemContext, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import type { AuditWriter } from '../audit/index.js';
import { ACTIVE_KEY_TTL_MS, type Sealer } from './sealer.js';
import { columnName, ORG_SEALED_COLUMNS, type SealedColumn } from './sealed-columns.js';

/**
 * Per-org data-key rotation. Rotating makes a new key active in one transaction (new seals use
 * it at once in this process; other processes within ACTIVE_KEY_TTL_MS), then the job walks
 * every org-scoped sealed column and re-encrypts, batch by batch, each value not yet under the
 * new key. A batch is one transaction that also moves the rotation's cursor, and each value is
 * written back only if it is still the ciphertext that was read (compare-and-set): a job that
 * dies loses at most its uncommitted batch, which the next one does again, and a value already
 * under the new key is never touched (its key id is in the sealed string).
 *
 * Values sealed under the old key after the walk passed them (another instance still caching
 * the old key, or a transaction that read it before the rotation committed) are caught by a
 * second, final walk that starts once SWEEP_AFTER_MS has elapsed since the rotation.
 */

/** Time past the cache TTL before the final sweep: covers a sealing transaction that read the old key before the rotation committed. */
export const SWEEP_MARGIN_MS = 30_000;
export const SWEEP_AFTER_MS = ACTIVE_KEY_TTL_MS + SWEEP_MARGIN_MS;
const DAY_MS = 86_400_000;

export type RotationTrigger = 'manual' | 'schedule' | 'rollback';

export interface DataKeySettings {
  /** Days a key stays active before the worker rotates it; 0: never by schedule. */
  rotationDays: number;
  /** Days a retired key can be made active again before it is destroyed. */
  rollbackDays: number;
}

export interface DataKeyDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  keyring: Keyring;
  settings: DataKeySettings;
}

interface KeyRow {
  id: string;
  active: boolean;
  created_at: Date;
  retired_at: Date | null;
  destroy_after: Date | null;
  destroyed_at: Date | null;
}

export interface RotationRow {
  id: string;
  from_key_id: string;
  to_key_id: string;
  trigger: RotationTrigger;
  requested_by: string | null;
  status: 'running' | 'done' | 'superseded';
  phase: 'pass' | 'wait' | 'sweep';
  cursor_column: string | null;
  cursor_row: string | null;
  total: string | number;
  done: string | number;
  started_at: Date;
  sweep_after: Date;
  finished_at: Date | null;
}

export interface DataKeyState {
  activeKey: { id: string; createdAt: string; nextRotationAt: string | null } | null;
  rotation: {
    id: string; trigger: RotationTrigger; status: RotationRow['status']; phase: RotationRow['phase']; fromKeyId: string; toKeyId: string;
    total: number; done: number; startedAt: string; sweepAfter: string; finishedAt: string | null;
  } | null;
  retiredKeys: { id: string; createdAt: string; retiredAt: string | null; destroyAfter: string | null; destroyedAt: string | null }[];
  settings: { rotationDays: number; rollbackDays: number };
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

/** Serializes key changes of one org (rotate, rollback, the job's scheduled rotation and destruction). */
export const lockOrgKeys = (tx: Tx, orgId: string) => exec(tx, sql`select pg_advisory_xact_lock(hashtextextended(${`palisade:data-key:${orgId}`}, 0))`);

const prefixOf = (keyId: string): string => `v1.${keyId}.`;

/** Values of `col` in the org that are sealed (not null, not emptied) and not under `keyId`. */
function notUnder(c: SealedColumn, orgId: string, keyId: string) {
  const col = sql.ref(c.column);
  const prefix = prefixOf(keyId);
  return sql`org_id = ${orgId} and ${col} is not null and ${col} <> '' and left(${col}, ${prefix.length}) <> ${prefix}`;
}

async function countNotUnder(tx: Tx, orgId: string, keyId: string): Promise<number> {
  let n = 0;
  for (const c of ORG_SEALED_COLUMNS) {
    const r = await one<{ n: number }>(tx, sql`select count(*)::int as n from ${sql.table(c.table)} where ${notUnder(c, orgId, keyId)}`);
    n += r?.n ?? 0;
  }
  return n;
}

async function countUnder(tx: Tx, orgId: string, keyId: string): Promise<number> {
  let n = 0;
  const prefix = prefixOf(keyId);
  for (const c of ORG_SEALED_COLUMNS) {
    const col = sql.ref(c.column);
    const r = await one<{ n: number }>(tx, sql`select count(*)::int as n from ${sql.table(c.table)}
                                               where org_id = ${orgId} and left(${col}, ${prefix.length}) = ${prefix}`);
    n += r?.n ?? 0;
  }
  return n;
}

export function createDataKeyService(deps: DataKeyDeps) {
  const { db, audit, clock, sealer, keyring, settings } = deps;
  const now = () => clock.now();
  const plusMs = (ms: number) => new Date(now().getTime() + ms);

  const activeKey = (tx: Tx, orgId: string) =>
    one<KeyRow>(tx, sql`select id, active, created_at, retired_at, destroy_after, destroyed_at from org_keys where org_id = ${orgId} and active`);
  const runningRotation = (tx: Tx, orgId: string) =>
    one<RotationRow>(tx, sql`select * from org_key_rotations where org_id = ${orgId} and status = 'running'`);

  async function startRotation(tx: Tx, orgId: string, from: string, to: string, trigger: RotationTrigger, requestedBy: string | null): Promise<string> {
    const id = newId();
    const total = await countNotUnder(tx, orgId, to);
    const at = now();
    await exec(tx, sql`insert into org_key_rotations (org_id, id, from_key_id, to_key_id, trigger, requested_by, status, total, started_at, sweep_after)
                       values (${orgId}, ${id}, ${from}, ${to}, ${trigger}, ${requestedBy}, 'running', ${total}, ${at.toISOString()},
                               ${new Date(at.getTime() + SWEEP_AFTER_MS).toISOString()})`);
    await exec(tx, sql`insert into data_key_due (org_id, due_at) values (${orgId}, ${at.toISOString()})
                       on conflict (org_id) do update set due_at = least(data_key_due.due_at, excluded.due_at)`);
    return id;
  }

  /** Retires `key` with its rollback window. */
  const retire = (tx: Tx, orgId: string, keyId: string) =>
    exec(tx, sql`update org_keys set active = false, retired_at = ${now().toISOString()},
                   destroy_after = ${plusMs(settings.rollbackDays * DAY_MS).toISOString()}
                 where org_id = ${orgId} and id = ${keyId} and active`);

  async function rotateIn(tx: Tx, orgId: string, ctx: RequestContext, trigger: 'manual' | 'schedule'): Promise<void> {
    await lockOrgKeys(tx, orgId);
    const current = await activeKey(tx, orgId);
    // Nothing sealed yet: the first sealed value creates the org's first key, so there is no
    // key to retire and nothing to re-encrypt. Refused rather than minting an unused key.
    if (!current) throw new AppError('conflict', 'the organization has no data key yet (nothing is sealed): there is nothing to rotate');
    if (await runningRotation(tx, orgId)) throw new AppError('conflict', 'a data-key rotation is already running for this organization');
    const next = keyring.newDataKey(orgId, newId());
    await retire(tx, orgId, current.id);
    await exec(tx, sql`insert into org_keys (org_id, id, kek_id, wrapped, created_at) values (${orgId}, ${next.id}, ${next.kekId}, ${next.wrapped}, ${now().toISOString()})`);
    const requestedBy = ctx.actor.type === 'user' ? ctx.actor.userId : null;
    const rotationId = await startRotation(tx, orgId, current.id, next.id, trigger, requestedBy);
    await audit.append(tx, orgId, ctx, {
      action: 'org_key.rotated',
      target: { type: 'org_key', id: next.id },
      details: { retiredKeyId: current.id, rotationId, trigger, rollbackDays: settings.rollbackDays },
    });
  }

  async function rollbackIn(tx: Tx, orgId: string, ctx: RequestContext): Promise<void> {
    await lockOrgKeys(tx, orgId);
    const current = await activeKey(tx, orgId);
    const back = await one<KeyRow>(tx, sql`select id, active, created_at, retired_at, destroy_after, destroyed_at from org_keys
                                           where org_id = ${orgId} and not active and destroyed_at is null and retired_at is not null
                                           order by retired_at desc, created_at desc limit 1`);
    if (!current || !back || !back.destroy_after || back.destroy_after <= now()) {
      throw new AppError('conflict', 'no retired data key is within its rollback window');
    }
    // The walk towards the key being abandoned stops; values it moved are walked back.
    await exec(tx, sql`update org_key_rotations set status = 'superseded', finished_at = ${now().toISOString()}
                       where org_id = ${orgId} and status = 'running'`);
    await retire(tx, orgId, current.id);
    await exec(tx, sql`update org_keys set active = true, retired_at = null, destroy_after = null where org_id = ${orgId} and id = ${back.id}`);
    const requestedBy = ctx.actor.type === 'user' ? ctx.actor.userId : null;
    const rotationId = await startRotation(tx, orgId, current.id, back.id, 'rollback', requestedBy);
    await audit.append(tx, orgId, ctx, {
      action: 'org_key.rolled_back',
      target: { type: 'org_key', id: back.id },
      details: { retiredKeyId: current.id, rotationId, rollbackDays: settings.rollbackDays },
    });
  }

  async function state(tx: Tx, orgId: string): Promise<DataKeyState> {
    const keys = await rows<KeyRow>(tx, sql`select id, active, created_at, retired_at, destroy_after, destroyed_at from org_keys
                                            where org_id = ${orgId} order by created_at desc, id`);
    const rotation = await one<RotationRow>(tx, sql`select * from org_key_rotations where org_id = ${orgId} order by started_at desc, id limit 1`);
    const active = keys.find((k) => k.active);
    return {
      activeKey: active
        ? {
            id: active.id,
            createdAt: active.created_at.toISOString(),
            nextRotationAt: settings.rotationDays > 0 ? new Date(active.created_at.getTime() + settings.rotationDays * DAY_MS).toISOString() : null,
          }
        : null,
      rotation: rotation
        ? {
            id: rotation.id, trigger: rotation.trigger, status: rotation.status, phase: rotation.phase,
            fromKeyId: rotation.from_key_id, toKeyId: rotation.to_key_id, total: Number(rotation.total), done: Number(rotation.done),
            startedAt: rotation.started_at.toISOString(), sweepAfter: rotation.sweep_after.toISOString(), finishedAt: iso(rotation.finished_at),
          }
        : null,
      retiredKeys: keys.filter((k) => !k.active).map((k) => ({
        id: k.id, createdAt: k.created_at.toISOString(), retiredAt: iso(k.retired_at), destroyAfter: iso(k.destroy_after), destroyedAt: iso(k.destroyed_at),
      })),
      settings: { ...settings },
    };
  }

  /**
   * One batch of the org's running rotation, in one transaction: up to `size` values moved
   * under the target key and the cursor advanced past them, or the walk's next phase.
   * `beforeCommit` lets a test kill the batch after its writes (faults).
   */
  async function step(orgId: string, size: number, beforeCommit?: () => void): Promise<'more' | 'wait' | 'idle'> {
    return db.withTenant({ orgId }, async (tx) => {
      const r = await one<RotationRow>(tx, sql`select * from org_key_rotations where org_id = ${orgId} and status = 'running' for update`);
      if (!r) return 'idle';
      if (r.phase === 'wait') {
        if (now() < r.sweep_after) return 'wait';
        await exec(tx, sql`update org_key_rotations set phase = 'sweep', cursor_column = null, cursor_row = null where org_id = ${orgId} and id = ${r.id}`);
        return 'more';
      }
      // A column that left the registry since the cursor was written: start over (safe: values under the target are skipped).
      const at = r.cursor_column ? ORG_SEALED_COLUMNS.findIndex((c) => columnName(c) === r.cursor_column) : -1;
      let i = Math.max(0, at);
      let after = at >= 0 ? r.cursor_row : null;
      for (; i < ORG_SEALED_COLUMNS.length; i++, after = null) {
        const c = ORG_SEALED_COLUMNS[i] as SealedColumn;
        const col = sql.ref(c.column);
        const key = sql.ref(c.row);
        const batch = await rows<{ row: string; value: string }>(
          tx,
          sql`select ${key}::text as row, ${col} as value from ${sql.table(c.table)}
              where ${notUnder(c, orgId, r.to_key_id)} ${after ? sql`and ${key} > ${after}::uuid` : sql``}
              order by ${key} limit ${size}`,
        );
        if (batch.length === 0) continue;
        const moved: { rid: string; was: string; now: string }[] = [];
        const reseal = sealer.resealer(tx, r.to_key_id);
        for (const v of batch) {
          try {
            moved.push({ rid: v.row, was: v.value, now: await reseal({ scope: orgId, table: c.table, column: c.column, row: v.row }, v.value) });
          } catch (err) {
            // A value that does not open stays as it is (its key is then never destroyed: see destroyDue).
            if (!(err instanceof SealedValueError)) throw err;
          }
        }
        const updated = moved.length === 0 ? 0 : await exec(
          tx,
          sql`update ${sql.table(c.table)} t set ${col} = v.now
              from jsonb_to_recordset(${JSON.stringify(moved)}::jsonb) as v(rid uuid, was text, now text)
              where t.org_id = ${orgId} and t.${key} = v.rid and t.${col} = v.was`,
        );
        const last = batch[batch.length - 1] as { row: string };
        await exec(tx, sql`update org_key_rotations set cursor_column = ${columnName(c)}, cursor_row = ${last.row},
                             done = done + ${updated}, total = greatest(total, done + ${updated})
                           where org_id = ${orgId} and id = ${r.id}`);
        beforeCommit?.();
        return 'more';
      }
      // The walk is complete.
      if (r.phase === 'pass') {
        await exec(tx, sql`update org_key_rotations set phase = 'wait', cursor_column = null, cursor_row = null where org_id = ${orgId} and id = ${r.id}`);
        return now() < r.sweep_after ? 'wait' : 'more';
      }
      await exec(tx, sql`update org_key_rotations set status = 'done', finished_at = ${now().toISOString()}, total = done
                         where org_id = ${orgId} and id = ${r.id}`);
      await audit.append(tx, orgId, systemContext('data-key job'), {
        action: 'org_key.rotation_finished', target: { type: 'org_key', id: r.to_key_id },
        details: { rotationId: r.id, retiredKeyId: r.from_key_id, values: Number(r.done) },
      });
      return 'idle';
    });
  }

  /**
   * Destroys the org's retired keys whose rollback window has ended: the row keeps its id and
   * dates, the key material goes. Never while a rotation runs or a value is still under the key.
   */
  async function destroyDue(orgId: string): Promise<{ destroyed: string[]; kept: string[] }> {
    return db.withTenant({ orgId }, async (tx) => {
      await lockOrgKeys(tx, orgId);
      const due = await rows<{ id: string }>(tx, sql`select id from org_keys where org_id = ${orgId} and not active and destroyed_at is null
                                                    and destroy_after <= ${now().toISOString()}`);
      if (due.length === 0 || (await runningRotation(tx, orgId))) return { destroyed: [], kept: due.map((d) => d.id) };
      const destroyed: string[] = [];
      const kept: string[] = [];
      for (const k of due) {
        if ((await countUnder(tx, orgId, k.id)) > 0) {
          kept.push(k.id);
          continue;
        }
        await exec(tx, sql`update org_keys set wrapped = null, kek_id = null, destroyed_at = ${now().toISOString()} where org_id = ${orgId} and id = ${k.id}`);
        await audit.append(tx, orgId, systemContext('data-key job'), { action: 'org_key.destroyed', target: { type: 'org_key', id: k.id }, details: { reason: 'rollback window ended' } });
        destroyed.push(k.id);
      }
      return { destroyed, kept };
    }).then((out) => {
      // The unwrapped material this process holds goes with the rows.
      if (out.destroyed.length > 0) sealer.forget(orgId);
      return out;
    });
  }

  /** Starts the scheduled rotation when the active key is older than the schedule. */
  async function rotateIfDue(orgId: string): Promise<boolean> {
    if (settings.rotationDays <= 0) return false;
    return db.withTenant({ orgId }, async (tx) => {
      const current = await activeKey(tx, orgId);
      if (!current || current.created_at.getTime() + settings.rotationDays * DAY_MS > now().getTime()) return false;
      if (await runningRotation(tx, orgId)) return false;
      await rotateIn(tx, orgId, systemContext('data-key schedule'), 'schedule');
      return true;
    }).then((started) => {
      if (started) sealer.forget(orgId);
      return started;
    });
  }

  /**
   * When the org next needs the job: a running rotation's next batch or its sweep; otherwise a
   * destruction or the schedule, at most a day away. Never "now" unless a rotation has batches
   * to run: a turn that could not act on a past date would otherwise be claimed again at once.
   */
  async function nextDue(orgId: string): Promise<Date> {
    return db.withTenant({ orgId }, async (tx) => {
      const r = await runningRotation(tx, orgId);
      if (r) return r.phase === 'wait' ? r.sweep_after : now();
      const times: number[] = [now().getTime() + DAY_MS];
      // A window that has already ended is retried by the turn that finishes the running rotation,
      // or, when values keep a key alive, a day later: never "due now" again, or the job would spin.
      const d = await one<{ at: Date | null }>(tx, sql`select min(destroy_after) as at from org_keys where org_id = ${orgId} and not active
                                                        and destroyed_at is null and destroy_after > ${now().toISOString()}`);
      if (d?.at) times.push(d.at.getTime());
      const a = await activeKey(tx, orgId);
      if (a && settings.rotationDays > 0) times.push(a.created_at.getTime() + settings.rotationDays * DAY_MS);
      return new Date(Math.max(Math.min(...times), now().getTime() + 60_000));
    });
  }

  return {
    settings,
    async state(orgId: string): Promise<DataKeyState> {
      return db.withTenant({ orgId }, (tx) => state(tx, orgId));
    },
    /** Rotates now (owner request or operator). 409 conflict when a rotation runs or there is no key yet. */
    async rotate(ctx: RequestContext, orgId: string): Promise<DataKeyState> {
      const out = await db.withTenant({ orgId }, async (tx) => {
        await rotateIn(tx, orgId, ctx, 'manual');
        return state(tx, orgId);
      });
      // After the commit: a seal in this process between a drop before it and the commit would cache the old key again.
      sealer.forget(orgId);
      return out;
    },
    /** Makes the most recently retired key active again, within its rollback window, and walks the values back to it. */
    async rollback(ctx: RequestContext, orgId: string): Promise<DataKeyState> {
      const out = await db.withTenant({ orgId }, async (tx) => {
        await rollbackIn(tx, orgId, ctx);
        return state(tx, orgId);
      });
      sealer.forget(orgId);
      return out;
    },
    step,
    destroyDue,
    rotateIfDue,
    nextDue,
  };
}

export type DataKeyService = ReturnType<typeof createDataKeyService>;
