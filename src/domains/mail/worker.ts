import { sql } from 'kysely';
import type { Logger } from 'pino';
import { exec, rows, type Database } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { errorCodeOf } from '../../kernel/errors.js';
import { createPollLoop } from '../../kernel/poll-loop.js';
import type { Sealer } from '../keys/index.js';
import { outboxRef, recipientRef } from './outbox.js';
import { deadlineFor, type MailTransport, type OutgoingMail, type SendError } from './smtp.js';
import { renderHtml } from './template.js';

/**
 * Seconds before each retry, jittered by ±20 %: about two and a half hours in all over 10
 * attempts. Mail is for now (a reset link lives 30 minutes, a sign-in link 15), so retrying for
 * a day like webhooks would deliver links long dead; a server down longer leaves the message
 * 'failed', logged, and the user asks again.
 */
export const MAIL_RETRY_DELAYS_SECONDS = [10, 30, 60, 120, 300, 600, 1200, 1800, 3600] as const;
export const MAIL_MAX_ATTEMPTS = MAIL_RETRY_DELAYS_SECONDS.length + 1;

export interface MailWorkerDeps {
  db: Database;
  clock: Clock;
  sealer: Sealer;
  transport: MailTransport;
  logger: Logger;
  publicOrigin: string;
  /** The transport's timeout (SMTP_TIMEOUT_MS): sizes the lease so a batch ends inside it. */
  timeoutMs: number;
  /** Pause between polls when nothing was due. */
  idleMs?: number;
  random?: () => number;
}

interface Claimed {
  id: string;
  to_address: string;
  subject: string;
  body: string;
  attempts: number;
}

const BATCH = 8;
const CONCURRENCY = 4;

function retryDelaySeconds(attempt: number, random: () => number): number {
  const base = MAIL_RETRY_DELAYS_SECONDS[Math.min(attempt, MAIL_RETRY_DELAYS_SECONDS.length) - 1] ?? 10;
  return Math.max(1, Math.round(base * (0.8 + 0.4 * random())));
}

/**
 * Sends the outbox's pending messages. A request only writes the message; this loop, in the
 * serving process or `palisade worker`, sends it. A claim leases a message (its next_attempt_at
 * moves to the lease's end) under `for update skip locked`, so two workers never hold the same
 * one; a worker that dies leaves it due again when its lease ends. Any failure — a refusal, a
 * timeout, a server down — leaves the message pending for the next attempt until the schedule
 * ends; the log says which message and why in a short code, never its body or address.
 */
export function createMailWorker(deps: MailWorkerDeps) {
  const random = deps.random ?? Math.random;
  // A batch must be recorded inside its lease even if every send runs to the deadline, or
  // another worker would claim it again and send it twice.
  const leaseMs = Math.ceil(BATCH / CONCURRENCY) * deadlineFor(deps.timeoutMs) + 30_000;
  const iso = (ms = 0) => new Date(deps.clock.now().getTime() + ms).toISOString();
  async function claim(): Promise<{ jobs: Claimed[]; lease: string }> {
    const lease = iso(leaseMs);
    const jobs = await deps.db.withSystem('mail worker: claim due messages', async (tx) => {
      const list = await rows<Omit<Claimed, 'body' | 'to_address'> & { body_sealed: string; to_sealed: string }>(
        tx,
        // Chosen once (a materialized CTE), as the webhook worker does, so the limit holds.
        sql`with due as materialized (
              select id from mail_outbox where status = 'pending' and next_attempt_at <= ${iso()}::timestamptz
              order by next_attempt_at limit ${BATCH} for update skip locked)
            update mail_outbox m set next_attempt_at = ${lease}::timestamptz, attempts = m.attempts + 1
            from due where m.id = due.id
            returning m.id, m.to_sealed, m.subject, m.body_sealed, m.attempts`,
      );
      const open = deps.sealer.opener(tx);
      const out: Claimed[] = [];
      for (const r of list) {
        out.push({
          id: r.id, to_address: await open(recipientRef(r.id), r.to_sealed), subject: r.subject, attempts: r.attempts,
          body: await open(outboxRef(r.id), r.body_sealed),
        });
      }
      return out;
    });
    return { jobs, lease };
  }

  /** Records one attempt; a lease that ran out meanwhile (another worker took over) records nothing. */
  async function record(c: Claimed, lease: string, error: SendError | null): Promise<void> {
    const exhausted = error !== null && c.attempts >= MAIL_MAX_ATTEMPTS;
    const status = error === null ? 'sent' : exhausted ? 'failed' : 'pending';
    const next = status === 'pending' ? iso(retryDelaySeconds(c.attempts, random) * 1000) : null;
    await deps.db.withSystem('mail worker: record an attempt', (tx) =>
      exec(
        tx,
        // At its end a message keeps its status and times, not its recipient or body (migration 039).
        sql`update mail_outbox set status = ${status}, next_attempt_at = ${next}::timestamptz, last_error = ${error},
              sent_at = ${error === null ? iso() : null}::timestamptz
              ${status === 'pending' ? sql`` : sql`, to_sealed = '', to_index = '', body_sealed = ''`}
            where id = ${c.id} and status = 'pending' and next_attempt_at = ${lease}::timestamptz`,
      ),
    );
    const fields = { mailId: c.id, attempts: c.attempts, ...(error ? { error } : {}) };
    if (status === 'sent') deps.logger.info(fields, 'mail sent');
    else if (status === 'pending') deps.logger.warn({ ...fields, retryAt: next }, 'mail not delivered, will retry');
    else deps.logger.error(fields, 'mail delivery failed for good');
  }

  /** A claimed message not yet sent when the worker stops: due again at once, the attempt undone. */
  async function release(c: Claimed, lease: string): Promise<void> {
    await deps.db.withSystem('mail worker: hand back a message', (tx) =>
      exec(
        tx,
        sql`update mail_outbox set next_attempt_at = ${iso()}::timestamptz, attempts = attempts - 1
            where id = ${c.id} and status = 'pending' and next_attempt_at = ${lease}::timestamptz`,
      ),
    );
  }

  async function deliver(c: Claimed, lease: string): Promise<void> {
    const mail: OutgoingMail = { to: c.to_address, subject: c.subject, text: c.body, html: renderHtml(c.body, deps.publicOrigin) };
    const outcome = await deps.transport.send(mail);
    await record(c, lease, outcome.ok ? null : outcome.error);
  }

  /** One pass: claims a batch of due messages and sends it. Returns how many were attempted. */
  async function tick(): Promise<number> {
    if (poll.stopping) return 0;
    const { jobs, lease } = await claim();
    let next = 0;
    const lanes = Array.from({ length: Math.min(CONCURRENCY, jobs.length) }, async () => {
      while (next < jobs.length) {
        const job = jobs[next++] as Claimed;
        await (poll.stopping ? release(job, lease) : deliver(job, lease)).catch((err: unknown) => {
          // The lease runs out and the message is due again: a database hiccup loses nothing.
          // The code only: a database error's detail can quote the row (its recipient).
          deps.logger.error({ code: errorCodeOf(err), mailId: job.id }, 'mail attempt not recorded');
        });
      }
    });
    await Promise.all(lanes);
    return jobs.length;
  }

  // poll.stopping: the pass in progress sends nothing more; what it claimed goes back.
  const poll = createPollLoop({ name: 'mail worker', logger: deps.logger, tick, idleMs: () => deps.idleMs ?? 1000 });
  return {
    tick,
    /** Ticks until nothing is due now (tests, the CLI). */
    drain: poll.drain,
    start: poll.start,
    /** Stops polling; the sends in flight are recorded, the rest handed back (graceful shutdown). */
    stop: poll.stop,
  };
}

export type MailWorker = ReturnType<typeof createMailWorker>;

