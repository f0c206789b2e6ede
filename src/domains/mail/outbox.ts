import { sql } from 'kysely';
import { newId } from '../../crypto/index.js';
import { exec, rows, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import type { Sealer } from '../keys/index.js';

export interface MailMessage {
  to: string;
  subject: string;
  body: string;
}

/**
 * Outgoing mail. Enqueued in the caller's transaction so that a reset token or invitation is
 * mailed exactly when the change that created it commits. Never logged: bodies carry tokens.
 */
export interface MailPort {
  enqueue(tx: Tx, message: MailMessage): Promise<void>;
}

/** Where a message's sealed body is bound: a body moved to another row no longer opens. */
export function outboxRef(id: string) {
  return { scope: 'mail-outbox', table: 'mail_outbox', column: 'body_sealed', row: id } as const;
}

/** Where a message's sealed recipient is bound (migration 039: no address in clear; `to_index` finds it). */
export function recipientRef(id: string) {
  return { scope: 'mail-outbox', table: 'mail_outbox', column: 'to_sealed', row: id } as const;
}

/**
 * The outbox every message goes through, bodies sealed. `deliver`: an SMTP transport is
 * configured and the mail worker sends what is queued ('pending'); without one the message is
 * 'kept', the development outbox that tests and the demo read and nothing sends.
 */
export function createOutboxMail(
  sealer: Sealer,
  opts: { clock: Clock; deliver: boolean },
): MailPort & { read(tx: Tx, to?: string): Promise<MailMessage[]> } {
  return {
    async enqueue(tx, m) {
      const id = newId();
      // The blind-index key before the outbox's (people.ts: one order of first keys, no deadlock).
      const toIndex = await sealer.emailIndex(tx, m.to);
      const sealed = await sealer.seal(tx, outboxRef(id), m.body);
      const to = await sealer.seal(tx, recipientRef(id), m.to);
      // Due at once, by the clock the worker reads: the request only writes; sending is the worker's.
      const due = opts.deliver ? opts.clock.now().toISOString() : null;
      await exec(
        tx,
        sql`insert into mail_outbox (id, to_sealed, to_index, subject, body_sealed, status, next_attempt_at)
            values (${id}, ${to}, ${toIndex}, ${m.subject}, ${sealed}, ${opts.deliver ? 'pending' : 'kept'}, ${due}::timestamptz)`,
      );
    },
    async read(tx, to) {
      const list = await rows<{ id: string; to_sealed: string; subject: string; body_sealed: string }>(
        tx,
        to
          ? sql`select id, to_sealed, subject, body_sealed from mail_outbox where to_index = ${await sealer.emailIndex(tx, to)} order by created_at, id`
          // A message that reached its end has no recipient or body left (worker.ts).
          : sql`select id, to_sealed, subject, body_sealed from mail_outbox where body_sealed <> '' order by created_at, id`,
      );
      const open = sealer.opener(tx);
      const out: MailMessage[] = [];
      for (const r of list) {
        out.push({ to: await open(recipientRef(r.id), r.to_sealed), subject: r.subject, body: await open(outboxRef(r.id), r.body_sealed) });
      }
      return out;
    },
  };
}
