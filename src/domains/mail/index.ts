import { sql } from 'kysely';
import { newId } from '../../crypto/index.js';
import { exec, rows, type Tx } from '../../db/database.js';
import { neutralizeText } from '../../kernel/text.js';
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

/**
 * User text in a mail is data, never prose (review R4 finding 5): every value someone other than
 * us chose — a passkey name, a browser's user agent, a client address — goes on its own line,
 * after a label that says whose words they are, inside typographic quotes. Control, bidi and
 * invisible characters become U+FFFD (the text may predate validation, or was never validated,
 * like a user agent), double-quote look-alikes become apostrophes so the value cannot close its
 * quotes, and it is cut to `max` characters.
 */
export function quotedLine(label: string, value: string, max = 120): string {
  const safe = neutralizeText(value, max).replace(/["\u201C\u201D\u201E\u201F\u00AB\u00BB\u2033\u2036\uFF02]/gu, "'");
  return `  ${label}: \u201C${safe}\u201D`;
}

const OUTBOX_SCOPE = 'mail-outbox';

/** Development and test transport: messages stay in the mail_outbox table, bodies sealed. */
export function createOutboxMail(sealer: Sealer): MailPort & { read(tx: Tx, to?: string): Promise<MailMessage[]> } {
  return {
    async enqueue(tx, m) {
      const id = newId();
      const sealed = await sealer.seal(tx, { scope: OUTBOX_SCOPE, table: 'mail_outbox', column: 'body_sealed', row: id }, m.body);
      await exec(tx, sql`insert into mail_outbox (id, to_address, subject, body_sealed) values (${id}, ${m.to}, ${m.subject}, ${sealed})`);
    },
    async read(tx, to) {
      const list = await rows<{ id: string; to_address: string; subject: string; body_sealed: string }>(
        tx,
        to
          ? sql`select id, to_address, subject, body_sealed from mail_outbox where lower(to_address) = lower(${to}) order by created_at, id`
          : sql`select id, to_address, subject, body_sealed from mail_outbox order by created_at, id`,
      );
      const out: MailMessage[] = [];
      for (const r of list) {
        const body = await sealer.open(tx, { scope: OUTBOX_SCOPE, table: 'mail_outbox', column: 'body_sealed', row: r.id }, r.body_sealed);
        out.push({ to: r.to_address, subject: r.subject, body });
      }
      return out;
    },
  };
}
