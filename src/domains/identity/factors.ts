import { sql } from 'kysely';
import { exec, one, type Database, type Tx } from '../../db/database.js';
import type { RequestContext } from '../../kernel/context.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import type { AuditWriter } from '../audit/index.js';
import { quotedLine, type MailPort } from '../mail/index.js';
import type { Sealer } from '../keys/sealer.js';
import { personOf } from './people.js';

/**
 * What adding or removing a second factor does to the user's sessions. Identity owns the factors,
 * the sessions domain owns the sessions (and implements this: sign-in.ts); app.ts hands one to
 * the other, so identity neither imports sessions nor writes its table.
 */
export interface FactorSessionEffects {
  /**
   * A factor was added in `tx`: password step-ups stop counting, and the signed-in session of
   * `ctx` that added it (if any) is marked as proven with it.
   */
  factorAdded(tx: Tx, ctx: RequestContext, userId: string): Promise<void>;
  /** The account's last factor went in `tx`: no session counts as proven with a second factor. */
  allFactorsRemoved(tx: Tx, userId: string): Promise<void>;
}

/**
 * After a factor is removed: MFA stays on while any factor remains (a passkey, or a confirmed
 * authenticator app). When none does, the account has no second factor in any sense: sessions
 * lose their "proven with a second factor" mark and recovery codes are deleted (they must not
 * come back into force with the next factor). The user row is locked first, so that a factor
 * being added concurrently is not judged from a stale snapshot.
 */
export async function settleFactors(tx: Tx, userId: string, sessions: FactorSessionEffects): Promise<{ enabled: boolean }> {
  await exec(tx, sql`select 1 from users where id = ${userId} for update`);
  const r = await one<{ enabled: boolean }>(
    tx,
    sql`update users set mfa_enabled = exists (select 1 from passkeys where user_id = ${userId})
                                   or exists (select 1 from totp_credentials where user_id = ${userId} and confirmed_at is not null)
        where id = ${userId} returning mfa_enabled as enabled`,
  );
  const enabled = r?.enabled ?? false;
  if (!enabled) {
    await sessions.allFactorsRemoved(tx, userId);
    await exec(tx, sql`delete from recovery_codes where user_id = ${userId}`);
  }
  return { enabled };
}

/** A sign-in method just added: what kind, and the name its adder chose (a passkey's). */
export type AddedFactor = { kind: 'authenticator_app' } | { kind: 'passkey'; name: string };

/**
 * Tells the account's owner a sign-in factor was added, in the same transaction: a factor
 * added from a stolen session would otherwise outlive a password reset unnoticed. Whatever the
 * adder chose or sent (the passkey's name, the browser's user agent, the address) is quoted as
 * data on its own labelled line (review R4 finding 5), never spliced into the mail's sentences.
 */
export async function notifyFactorAdded(
  tx: Tx, { mail, sealer }: { mail: MailPort; sealer: Sealer }, userId: string, factor: AddedFactor, ctx: RequestContext,
): Promise<void> {
  const u = await personOf(sealer, tx, userId);
  if (!u) return;
  const lines = [
    factor.kind === 'passkey' ? 'A passkey was added to your Palisade account.' : 'An authenticator app was added to your Palisade account.',
    '',
    ...(factor.kind === 'passkey' ? [quotedLine('Name given to the passkey', factor.name, 64)] : []),
    ...(ctx.ip ? [quotedLine('Added from the network address', ctx.ip, 64)] : []),
    ...(ctx.userAgent ? [quotedLine('By a browser describing itself as', ctx.userAgent, 200)] : []),
    '',
    'If this was not you, reset your password, remove it under your security settings, and sign out everywhere.',
  ];
  await mail.enqueue(tx, {
    to: u.email,
    subject: 'A sign-in method was added to your Palisade account',
    body: lines.join('\n'),
  });
}

/**
 * An account just locked (too many wrong passwords or codes): the audit event and a security
 * mail to the account's owner, in one transaction. The caller who tripped it is told nothing
 * more than `invalid_credentials` (a lock is not announced to whoever guesses); the owner learns
 * it from their mailbox, with the way out, and the guesser's address and browser quoted as data.
 */
export async function recordAccountLocked(
  deps: { db: Database; audit: AuditWriter; mail: MailPort; sealer: Sealer },
  ctx: RequestContext,
  userId: string,
  actor?: { type: string; id: string | null },
): Promise<void> {
  await deps.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
    await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.account_locked', result: 'denied', target: { type: 'user', id: userId }, ...(actor ? { actor } : {}) });
    const lock = await one<{ locked_until: Date | null }>(tx, sql`select locked_until from users where id = ${userId}`);
    const person = lock ? await personOf(deps.sealer, tx, userId) : null;
    if (!lock || !person) return;
    const u = { email: person.email, locked_until: lock.locked_until };
    const lines = [
      'Your Palisade account was locked after too many wrong passwords or codes.',
      ...(u.locked_until ? [`It unlocks by itself at ${u.locked_until.toISOString()}.`] : []),
      '',
      ...(ctx.ip ? [quotedLine('Last attempt from the network address', ctx.ip, 64)] : []),
      ...(ctx.userAgent ? [quotedLine('By a browser describing itself as', ctx.userAgent, 200)] : []),
      '',
      'If this was not you, someone may be guessing your password: reset it (the reset ends the lock),',
      'and turn on a second factor.',
    ];
    await deps.mail.enqueue(tx, { to: u.email, subject: 'Your Palisade account was locked', body: lines.join('\n') });
  });
}
