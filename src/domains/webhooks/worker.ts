import { sql } from 'kysely';
import type { Logger } from 'pino';
import { exec, one, rows, type Database, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { systemContext } from '../../kernel/context.js';
import { errorCodeOf } from '../../kernel/errors.js';
import { createPollLoop } from '../../kernel/poll-loop.js';
import { WEBHOOK_CHANNEL } from './outbox.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { secretRef } from './service.js';
import { signedHeaders } from './signing.js';
import type { DeliveryOutcome, WebhookTransport } from './transport.js';

/**
 * Seconds before each retry: about 24 hours in all over 11 attempts, each delay jittered by
 * up to ±20 % so that the deliveries of one outage do not all come back in the same second.
 */
export const RETRY_DELAYS_SECONDS = [5, 30, 120, 600, 1800, 3600, 7200, 14_400, 28_800, 28_800] as const;
export const MAX_ATTEMPTS = RETRY_DELAYS_SECONDS.length + 1;
/** How long a claimed delivery (and a claimed org) is a worker's before another may take it. */
export const LEASE_SECONDS = 60;
/** The transport's deadline per delivery (transport.ts default), which bounds a batch's duration. */
const SEND_DEADLINE_SECONDS = 10;

interface Claimed {
  id: string;
  endpoint_id: string;
  message_id: string;
  payload: string;
  attempts: number;
  url: string;
  secret_sealed: string;
  previous_secret_sealed: string | null;
  previous_secret_expires_at: Date | null;
}

export interface WorkerDeps {
  db: Database;
  clock: Clock;
  sealer: Sealer;
  audit: AuditWriter;
  transport: WebhookTransport;
  logger: Logger;
  /** Deliveries in flight at once. */
  concurrency?: number;
  /**
   * Pause between polls when nothing was due (100 ms: one tiny indexed statement). A change in
   * flight holds its org's due row, which the claim skips, so a longer pause shows directly in
   * event-to-receipt latency. The worker also listens for the NOTIFY a queued delivery sends on
   * commit (WEBHOOK_CHANNEL) and starts at once: the poll is the fallback, for a listener that
   * is down (it reconnects by itself) and for what other instances' processes miss.
   */
  idleMs?: number;
  /** The wake-up listener's connection was lost (default: a warning in the log); polling goes on. */
  onListenerLost?: (err: unknown) => void;
  random?: () => number;
}

export function retryDelaySeconds(attempt: number, random: () => number): number {
  const base = RETRY_DELAYS_SECONDS[Math.min(attempt, RETRY_DELAYS_SECONDS.length) - 1] ?? 5;
  return Math.max(1, Math.round(base * (0.8 + 0.4 * random())));
}

/**
 * The delivery worker. State lives in PostgreSQL only: a worker that dies loses its leases,
 * and whatever it held is delivered by the next one (with the same webhook-id; a receiver may
 * see an event twice only when the worker died between sending it and recording the answer).
 */
export function createWebhookWorker(deps: WorkerDeps) {
  const concurrency = deps.concurrency ?? 16;
  // A batch must finish inside its lease even if every send runs to the transport's deadline,
  // or another worker would claim it again and send it twice.
  const batch = Math.max(1, Math.min(50, concurrency * Math.floor(LEASE_SECONDS / (SEND_DEADLINE_SECONDS + 5))));
  const random = deps.random ?? Math.random;
  const iso = (ms = 0) => new Date(deps.clock.now().getTime() + ms).toISOString();
  const inFlight = new Set<Promise<void>>();

  /** Takes up to `limit` orgs with work due, leasing each for LEASE_SECONDS. */
  async function claimOrgs(limit: number): Promise<{ orgId: string; lease: string }[]> {
    const lease = iso(LEASE_SECONDS * 1000);
    const list = await deps.db.withSystem('webhook worker: which orgs have deliveries due', (tx) =>
      rows<{ org_id: string }>(
        tx,
        // Chosen once (see claimDeliveries), and served longest-waiting first.
        sql`with due as materialized (
              select org_id, due_at from webhook_due where due_at <= ${iso()}::timestamptz order by due_at limit ${limit} for update skip locked),
            claimed as (
              update webhook_due w set due_at = ${lease}::timestamptz from due where w.org_id = due.org_id returning w.org_id, due.due_at as waited_since)
            select org_id from claimed order by waited_since, org_id`,
      ),
    );
    return list.map((r) => ({ orgId: r.org_id, lease }));
  }

  async function claimDeliveries(orgId: string, limit: number): Promise<{ claimed: Claimed; secrets: string[]; lease: string }[]> {
    const lease = iso(LEASE_SECONDS * 1000);
    return deps.db.withTenant({ orgId }, async (tx) => {
      // The rows to claim are chosen once (a materialized CTE): as an IN (… limit … for update
      // skip locked) subquery, a nested-loop plan rescans it per row and each rescan skips the
      // rows just leased, so one claim took far more than `limit`. Only deliveries of enabled
      // endpoints are candidates, or a disabled endpoint's backlog would fill every batch.
      const list = await rows<Claimed>(
        tx,
        sql`with due as materialized (
              select d.id from webhook_deliveries d
              join webhook_endpoints e on e.org_id = d.org_id and e.id = d.endpoint_id and e.enabled
              where d.org_id = ${orgId} and d.status = 'pending' and d.next_attempt_at <= ${iso()}::timestamptz
                and (d.lease_until is null or d.lease_until < ${iso()}::timestamptz)
              order by d.next_attempt_at limit ${limit}
              for update of d skip locked)
            update webhook_deliveries d set lease_until = ${lease}::timestamptz, attempts = d.attempts + 1
            from due, webhook_endpoints e
            where d.org_id = ${orgId} and d.id = due.id and e.org_id = d.org_id and e.id = d.endpoint_id
            returning d.id, d.endpoint_id, d.message_id, d.payload, d.attempts, e.url, e.secret_sealed, e.previous_secret_sealed,
              e.previous_secret_expires_at`,
      );
      const out = [];
      for (const c of list) out.push({ claimed: c, secrets: await secretsOf(tx, orgId, c), lease });
      return out;
    });
  }

  async function secretsOf(tx: Tx, orgId: string, c: Claimed): Promise<string[]> {
    const secrets = [await deps.sealer.open(tx, secretRef(orgId, c.endpoint_id), c.secret_sealed)];
    if (c.previous_secret_sealed && c.previous_secret_expires_at && c.previous_secret_expires_at > deps.clock.now()) {
      secrets.push(await deps.sealer.open(tx, secretRef(orgId, c.endpoint_id, 'previous_secret_sealed'), c.previous_secret_sealed));
    }
    return secrets;
  }

  /** Records one attempt; a lease lost meanwhile (another worker took over) records nothing. */
  async function record(orgId: string, c: Claimed, lease: string, outcome: DeliveryOutcome): Promise<void> {
    const at = iso();
    await deps.db.withTenant({ orgId }, async (tx) => {
      const held = await one(tx, sql`select 1 from webhook_deliveries where org_id = ${orgId} and id = ${c.id} and lease_until = ${lease}::timestamptz for update`);
      if (!held) return;
      await exec(
        tx,
        sql`insert into webhook_attempts (org_id, delivery_id, attempt, at, status, latency_ms, error)
            values (${orgId}, ${c.id}, ${c.attempts}, ${at}::timestamptz, ${outcome.status}, ${Math.round(outcome.latencyMs)}, ${outcome.error})
            on conflict do nothing`,
      );
      const exhausted = !outcome.ok && c.attempts >= MAX_ATTEMPTS;
      const next = outcome.ok || exhausted ? null : iso(retryDelaySeconds(c.attempts, random) * 1000);
      await exec(
        tx,
        sql`update webhook_deliveries set status = ${outcome.ok ? 'succeeded' : exhausted ? 'failed' : 'pending'},
              next_attempt_at = ${next}::timestamptz, lease_until = null, last_status = ${outcome.status}, last_error = ${outcome.error},
              last_latency_ms = ${Math.round(outcome.latencyMs)}, completed_at = ${next ? null : at}::timestamptz
            where org_id = ${orgId} and id = ${c.id}`,
      );
      // The endpoint row is shared by all its deliveries: a success writes (and locks) it only
      // when there is a failure streak to end, or concurrent successes would queue on its lock.
      await exec(
        tx,
        outcome.ok
          ? sql`update webhook_endpoints set consecutive_failures = 0 where org_id = ${orgId} and id = ${c.endpoint_id} and consecutive_failures <> 0`
          : sql`update webhook_endpoints set consecutive_failures = consecutive_failures + 1 where org_id = ${orgId} and id = ${c.endpoint_id}`,
      );
      if (exhausted) await disable(tx, orgId, c.endpoint_id);
    });
  }

  /**
   * An endpoint that failed one event for its whole retry schedule (about a day) is switched
   * off; its other pending deliveries end as failed (manual redelivery remains), and the org
   * hears of it through its audit trail and any other endpoint subscribed to the event.
   */
  async function disable(tx: Tx, orgId: string, endpointId: string): Promise<void> {
    const n = await exec(
      tx,
      sql`update webhook_endpoints set enabled = false, disabled_reason = 'failing', updated_at = ${iso()}::timestamptz
          where org_id = ${orgId} and id = ${endpointId} and enabled`,
    );
    if (n !== 1) return;
    await exec(
      tx,
      sql`update webhook_deliveries set status = 'failed', next_attempt_at = null, lease_until = null, last_error = 'endpoint disabled',
            completed_at = ${iso()}::timestamptz
          where org_id = ${orgId} and endpoint_id = ${endpointId} and status = 'pending'`,
    );
    await deps.audit.append(tx, orgId, systemContext('webhook-worker'), {
      action: 'webhook.endpoint_disabled', target: { type: 'webhook_endpoint', id: endpointId }, details: { reason: 'failing' },
    });
  }

  /**
   * After a pass over an org: due again at its next pending attempt, or off the list. Work
   * already due counts as due now, behind the orgs that have waited longer (claims go oldest
   * first): a backlog's old attempt times would otherwise put its org first on every pass.
   */
  async function reschedule(orgId: string, lease: string): Promise<void> {
    await deps.db.withTenant({ orgId }, async (tx) => {
      const next = await one<{ at: Date | null }>(
        tx,
        sql`select min(d.next_attempt_at) as at from webhook_deliveries d
            join webhook_endpoints e on e.org_id = d.org_id and e.id = d.endpoint_id and e.enabled
            where d.org_id = ${orgId} and d.status = 'pending'`,
      );
      // Conditional on our lease: an event queued meanwhile moved due_at to now, and stays due.
      if (next?.at) {
        const due = new Date(Math.max(next.at.getTime(), deps.clock.now().getTime()));
        await exec(tx, sql`update webhook_due set due_at = ${due.toISOString()}::timestamptz where org_id = ${orgId} and due_at = ${lease}::timestamptz`);
      } else {
        await exec(tx, sql`delete from webhook_due where org_id = ${orgId} and due_at = ${lease}::timestamptz`);
      }
    });
  }

  /** A claimed delivery not yet sent when the worker stops: handed back as if never claimed. */
  async function release(orgId: string, job: { claimed: Claimed; lease: string }): Promise<void> {
    await deps.db.withTenant({ orgId }, (tx) =>
      exec(
        tx,
        sql`update webhook_deliveries set lease_until = null, attempts = attempts - 1
            where org_id = ${orgId} and id = ${job.claimed.id} and lease_until = ${job.lease}::timestamptz`,
      ),
    );
  }

  async function deliver(orgId: string, job: { claimed: Claimed; secrets: string[]; lease: string }): Promise<void> {
    const { claimed: c } = job;
    const headers = signedHeaders(c.message_id, deps.clock.now(), c.payload, job.secrets);
    const outcome = await deps.transport.send(c.url, headers, c.payload);
    await record(orgId, c, job.lease, outcome);
  }

  /** One pass: every org due now, every delivery due in it. Returns how many were attempted. */
  async function tick(): Promise<number> {
    let attempted = 0;
    for (const { orgId, lease } of await claimOrgs(20)) {
      try {
        // One batch per org per pass: an org with a backlog (or slow receivers) takes its turn
        // with the others instead of holding the worker until it is drained. Once stopping, no
        // new claim; the org is still rescheduled, so it is due again at once for the next
        // worker instead of staying leased to a process that is going away.
        if (!poll.stopping) {
          const jobs = await claimDeliveries(orgId, batch);
          attempted += jobs.length;
          await pool(jobs, concurrency, (job) => track(poll.stopping ? release(orgId, job) : deliver(orgId, job)));
        }
        await reschedule(orgId, lease);
      } catch (err) {
        // The org's lease runs out and another pass retries it.
        deps.logger.error({ orgId, code: errorCodeOf(err) }, 'webhook delivery pass failed');
      }
    }
    return attempted;
  }

  function track(p: Promise<void>): Promise<void> {
    inFlight.add(p);
    return p.finally(() => inFlight.delete(p));
  }

  // poll.stopping: the pass in progress claims nothing more and hands back what it has not sent.
  const poll = createPollLoop({ name: 'webhook worker', logger: deps.logger, tick, idleMs: () => deps.idleMs ?? 100 });
  let listening: Promise<(() => Promise<void>) | null> = Promise.resolve(null);
  const onLost = deps.onListenerLost
    ?? ((err: unknown) => deps.logger.warn({ code: errorCodeOf(err) }, 'webhook wake-up listener lost: polling until it is back'));
  return {
    tick,
    /** Ticks until nothing is due now (tests, the CLI). */
    drain: poll.drain,
    start(): void {
      if (poll.running) return;
      poll.start();
      listening = deps.db.listen(WEBHOOK_CHANNEL, () => poll.wake(), onLost).catch((err: unknown) => {
        onLost(err);
        return null;
      });
    },
    /** Resolves once the wake-up listener is in place (or could not be: polling only). */
    async listening(): Promise<void> {
      await listening;
    },
    /** Stops polling and waits for the deliveries in flight to be recorded (graceful shutdown). */
    async stop(): Promise<void> {
      const unlisten = await listening;
      listening = Promise.resolve(null);
      // A database already closed has no listener left to end.
      await unlisten?.().catch(() => undefined);
      await poll.stop();
      await Promise.allSettled([...inFlight]);
    },
  };
}

async function pool<T>(items: readonly T[], size: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(size, items.length) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await fn(item);
    }
  });
  await Promise.all(lanes);
}

export type WebhookWorker = ReturnType<typeof createWebhookWorker>;
