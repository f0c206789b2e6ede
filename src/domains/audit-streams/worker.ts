import { sql } from 'kysely';
import type { Logger } from 'pino';
import { exec, one, rows, type Database } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { errorCodeOf } from '../../kernel/errors.js';
import { createPollLoop } from '../../kernel/poll-loop.js';
import type { AuditReader } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import type { StreamEvent } from './format.js';
import { eventJson } from './format.js';
import type { StreamOutcome } from './outcome.js';
import type { StreamSender, StreamTarget } from './sender.js';
import { targetOf, type SealedTarget } from './service.js';

/** Seconds before each retry, jittered ±20 %, then every ten minutes for as long as it takes: the cursor waits, nothing is dropped. */
export const STREAM_RETRY_DELAYS_SECONDS = [1, 5, 15, 30, 60, 120, 300, 600] as const;
/** How long a claimed stream (and a claimed org) is a worker's: far beyond one batch's send deadline. */
export const STREAM_LEASE_SECONDS = 60;
/** Events per batch, and the bytes a batch may reach (whichever comes first). */
export const DEFAULT_BATCH_EVENTS = 500;
export const DEFAULT_BATCH_BYTES = 1024 * 1024;

/** Orgs a worker serves at once: a slow receiver holds one lane, not the pass. */
const ORG_LANES = 4;

export function streamRetryDelaySeconds(failures: number, random: () => number): number {
  const base = STREAM_RETRY_DELAYS_SECONDS[Math.min(failures, STREAM_RETRY_DELAYS_SECONDS.length) - 1] ?? 1;
  return Math.max(1, Math.round(base * (0.8 + 0.4 * random())));
}

export interface StreamWorkerDeps {
  db: Database;
  clock: Clock;
  sealer: Sealer;
  reader: AuditReader;
  sender: StreamSender;
  logger: Logger;
  batchEvents?: number;
  batchBytes?: number;
  /**
   * How soon a caught-up org is looked at again for new events. A write in this process wakes
   * the worker at once (nudge); this bounds the lag of writes made by other processes.
   */
  pollMs?: number;
  random?: () => number;
}

interface Claimed extends SealedTarget {
  id: string;
  cursor_seq: number | string;
  consecutive_failures: number;
}

interface Batch {
  streamId: string;
  target: StreamTarget;
  from: number;
  events: StreamEvent[];
  failures: number;
  lease: string;
}

/**
 * Sends each org's committed audit events to its streams, in order, at least once. State lives
 * in PostgreSQL only: a stream is leased (one batch in flight, whoever holds it), its cursor
 * moves only after the receiver acknowledged the batch and only if the lease is still ours, and
 * a worker that dies lets the stream go when the lease runs out. A batch is read only when it
 * is about to be sent, and the next only after the last was acknowledged: a slow receiver slows
 * its own stream, never a request (requests write audit_events and nothing else).
 */
export function createStreamWorker(deps: StreamWorkerDeps) {
  const batchEvents = deps.batchEvents ?? DEFAULT_BATCH_EVENTS;
  const batchBytes = deps.batchBytes ?? DEFAULT_BATCH_BYTES;
  const pollMs = deps.pollMs ?? 1000;
  const random = deps.random ?? Math.random;
  const iso = (ms = 0) => new Date(deps.clock.now().getTime() + ms).toISOString();
  /** Orgs written to in this process lately, looked at before their check time (wall-clock ms until). */
  const hot = new Map<string, number>();
  /** Orgs with a stream, refreshed now and then, so that nudges for the others cost nothing. */
  let streaming = new Set<string>();
  let streamingAt = 0;

  async function refreshStreaming(): Promise<void> {
    if (Date.now() - streamingAt < 5000) return;
    streamingAt = Date.now();
    const list = await deps.db.withSystem('audit stream worker: which orgs stream', (tx) =>
      rows<{ org_id: string }>(tx, sql`select org_id from audit_stream_orgs`));
    streaming = new Set(list.map((r) => r.org_id));
  }

  async function claimOrgs(limit: number): Promise<{ orgId: string; lease: string }[]> {
    const lease = iso(STREAM_LEASE_SECONDS * 1000);
    const wall = Date.now();
    for (const [org, until] of hot) if (until < wall) hot.delete(org);
    const nudged = [...hot.keys()];
    const list = await deps.db.withSystem('audit stream worker: which orgs are due', (tx) =>
      rows<{ org_id: string }>(
        tx,
        // Chosen once (a materialized CTE), as the webhook worker does, so the limit holds.
        sql`with due as materialized (
              select org_id from audit_stream_orgs
              where check_at <= ${iso()}::timestamptz or org_id = any(${nudged}::uuid[])
              order by check_at limit ${limit} for update skip locked)
            update audit_stream_orgs o set check_at = ${lease}::timestamptz from due where o.org_id = due.org_id
            returning o.org_id`,
      ),
    );
    return list.map((r) => ({ orgId: r.org_id, lease }));
  }

  /** Leases the org's streams that have events to send and are due, and reads each one's next batch. */
  async function claimBatches(orgId: string): Promise<Batch[]> {
    const lease = iso(STREAM_LEASE_SECONDS * 1000);
    return deps.db.withTenant({ orgId }, async (tx) => {
      const claimed = await rows<Claimed>(
        tx,
        sql`with due as materialized (
              select s.id from audit_streams s join audit_heads h on h.org_id = s.org_id
              where s.org_id = ${orgId} and s.enabled and s.cursor_seq < h.seq
                and (s.next_attempt_at is null or s.next_attempt_at <= ${iso()}::timestamptz)
                and (s.lease_until is null or s.lease_until < ${iso()}::timestamptz)
              for update of s skip locked)
            update audit_streams s set lease_until = ${lease}::timestamptz from due
            where s.org_id = ${orgId} and s.id = due.id
            returning s.id, s.kind, s.url, s.host, s.port, s.tls, s.secret_sealed, s.previous_secret_sealed, s.previous_secret_expires_at, s.auth_header_sealed,
              s.cursor_seq, s.consecutive_failures`,
      );
      const out: Batch[] = [];
      for (const c of claimed) {
        const from = Number(c.cursor_seq);
        const read = await deps.reader.since(tx, orgId, from, batchEvents);
        // Bounded in bytes too; the first event always goes, whatever its size.
        const events: StreamEvent[] = [];
        let bytes = 0;
        for (const e of read) {
          const ev = { ...e, orgId };
          bytes += Buffer.byteLength(eventJson(ev)) + 256;
          if (events.length > 0 && bytes > batchBytes) break;
          events.push(ev);
        }
        if (events.length === 0) continue;
        out.push({ streamId: c.id, target: await targetOf(tx, deps.sealer, orgId, c.id, c, deps.clock.now()), from, events, failures: c.consecutive_failures, lease });
      }
      return out;
    });
  }

  /** Records one attempt; a lease lost meanwhile (another worker took over) records nothing. */
  async function record(orgId: string, b: Batch, outcome: StreamOutcome): Promise<void> {
    const at = iso();
    const last = b.events[b.events.length - 1] as StreamEvent;
    await deps.db.withTenant({ orgId }, (tx) =>
      exec(
        tx,
        outcome.ok
          ? sql`update audit_streams set cursor_seq = ${last.seq}, cursor_at = ${last.at}::timestamptz, consecutive_failures = 0, last_error = null,
                  last_attempt_at = ${at}::timestamptz, last_delivered_at = ${at}::timestamptz, next_attempt_at = null, lease_until = null
                where org_id = ${orgId} and id = ${b.streamId} and lease_until = ${b.lease}::timestamptz and cursor_seq = ${b.from}`
          : sql`update audit_streams set consecutive_failures = consecutive_failures + 1, last_error = ${outcome.error ?? 'network_error'},
                  last_attempt_at = ${at}::timestamptz, lease_until = null,
                  next_attempt_at = ${iso(streamRetryDelaySeconds(b.failures + 1, random) * 1000)}::timestamptz
                where org_id = ${orgId} and id = ${b.streamId} and lease_until = ${b.lease}::timestamptz`,
      ),
    );
    if (!outcome.ok) {
      // The stream and a code only: what was sent is the org's audit trail.
      deps.logger.warn({ orgId, streamId: b.streamId, error: outcome.error, failures: b.failures + 1 }, 'audit stream batch not acknowledged, will retry');
    }
  }

  /** A claimed batch not sent because the worker stops: the stream is free again at once. */
  async function release(orgId: string, b: Batch): Promise<void> {
    await deps.db.withTenant({ orgId }, (tx) =>
      exec(tx, sql`update audit_streams set lease_until = null where org_id = ${orgId} and id = ${b.streamId} and lease_until = ${b.lease}::timestamptz`));
  }

  /**
   * After a pass: at once again while a stream has events to send and is due, at its next retry
   * when the ones with a backlog all wait, else after pollMs (new events); off the list when
   * nothing is enabled. Conditional on our lease: a change meanwhile (a stream enabled) stays.
   */
  async function reschedule(orgId: string, lease: string): Promise<void> {
    await deps.db.withTenant({ orgId }, async (tx) => {
      const next = await one<{ enabled: number; due: boolean; retry_at: Date | null }>(
        tx,
        sql`select count(*)::int as enabled,
              coalesce(bool_or(s.cursor_seq < h.seq and (s.next_attempt_at is null or s.next_attempt_at <= ${iso()}::timestamptz)), false) as due,
              min(s.next_attempt_at) filter (where s.cursor_seq < h.seq) as retry_at
            from audit_streams s left join audit_heads h on h.org_id = s.org_id
            where s.org_id = ${orgId} and s.enabled`,
      );
      if (!next || next.enabled === 0) {
        await exec(tx, sql`delete from audit_stream_orgs where org_id = ${orgId} and check_at = ${lease}::timestamptz`);
        return;
      }
      const poll = deps.clock.now().getTime() + pollMs;
      const at = next.due ? deps.clock.now().getTime() : Math.min(poll, next.retry_at?.getTime() ?? poll);
      await exec(tx, sql`update audit_stream_orgs set check_at = ${new Date(at).toISOString()}::timestamptz where org_id = ${orgId} and check_at = ${lease}::timestamptz`);
    });
  }

  /** One pass over the orgs due now: one batch per stream. Returns how many events were attempted. */
  async function tick(): Promise<number> {
    if (loop.stopping) return 0;
    let attempted = 0;
    const orgs = await claimOrgs(20);
    let next = 0;
    // Orgs in parallel lanes (review of issue 14, P2): one after another, a receiver that takes
    // just under the timeout to accept each batch delayed every other org's stream by as much.
    const lane = async (): Promise<void> => {
      while (next < orgs.length) {
        const { orgId, lease } = orgs[next++] as (typeof orgs)[number];
        await passOver(orgId, lease);
      }
    };
    const passOver = async (orgId: string, lease: (typeof orgs)[number]['lease']): Promise<void> => {
      try {
        const batches = loop.stopping ? [] : await claimBatches(orgId);
        await Promise.all(batches.map(async (b) => {
          if (loop.stopping) return release(orgId, b);
          attempted += b.events.length;
          const outcome = await deps.sender.send(b.target, b.events, `audit_${b.streamId.replace(/-/g, '')}_${b.from + 1}`);
          await record(orgId, b, outcome);
        }));
        await reschedule(orgId, lease);
      } catch (err) {
        // The leases run out and a later pass takes the org again. The code only: a database
        // error's detail can quote a row (an event's details).
        deps.logger.error({ orgId, code: errorCodeOf(err) }, 'audit stream pass failed');
      }
    };
    await Promise.all(Array.from({ length: Math.min(ORG_LANES, orgs.length) }, lane));
    return attempted;
  }

  // loop.stopping: the pass in progress claims nothing more and hands back what it claimed.
  const loop = createPollLoop({
    name: 'audit stream worker', logger: deps.logger, tick,
    // No org streams (the common case): nothing to claim until the list, refreshed every 5 s, says otherwise.
    pass: () => refreshStreaming().then(() => (streaming.size > 0 ? tick() : 0)),
    // While an org is hot its commit may not have landed yet: look again soon.
    idleMs: () => (hot.size > 0 ? 15 : Math.min(pollMs, 250)),
  });
  return {
    tick,
    /** Ticks until nothing is due now (tests, the CLI). */
    drain: loop.drain,
    /**
     * An audit append in this process (called before its transaction commits): the org is
     * looked at on the next passes for a moment, instead of at its next poll.
     */
    nudge(orgId: string): void {
      if (!loop.running || !streaming.has(orgId)) return;
      hot.set(orgId, Date.now() + 250);
      loop.wake();
    },
    /** A stream was created or changed here: the org streams now, and is looked at at once. */
    streamsChanged(orgId: string): void {
      streaming.add(orgId);
      if (loop.running) {
        hot.set(orgId, Date.now() + 500);
        loop.wake();
      }
    },
    start: loop.start,
    /** Stops polling; batches in flight are recorded, claimed ones not yet sent handed back. */
    stop: loop.stop,
  };
}


export type StreamWorker = ReturnType<typeof createStreamWorker>;
