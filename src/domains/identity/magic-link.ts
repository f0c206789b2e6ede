import { sql } from 'kysely';
import { mintOpaqueToken, opaqueTokenHash, randomToken, safeEqual, sha256Hex } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { exec, one, type Database } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/sealer.js';
import type { MailPort } from '../mail/index.js';
import { userWithEmail, withPeople, type SealedPerson } from './people.js';

export const MAGIC_LINK_TTL_MS = 15 * 60 * 1000;

export interface MagicLinkDeps {
  db: Database;
  clock: Clock;
  audit: AuditWriter;
  mail: MailPort;
  sealer: Sealer;
  publicOrigin: string;
}

/** The account a redeemed link signs in: the caller finishes the sign-in (or asks the second factor). */
export interface MagicLinkUser {
  id: string;
  email: string;
  name: string;
  sessionEpoch: number;
  mfaEnabled: boolean;
}

const system = { orgId: SYSTEM_ORG_ID };

/**
 * Sign-in by mailed link: proof of the mailbox, as a first factor. The link is single use, lives
 * 15 minutes, is stored as a hash, and works only in the browser that asked (the request sets a
 * random cookie whose hash the link row keeps), so a link forwarded, leaked from a mailbox or
 * fetched by a mail scanner signs nobody in elsewhere. Asking answers the same for every address.
 */
export function createMagicLinkService(deps: MagicLinkDeps) {
  const page = `${deps.publicOrigin}/sign-in/link`;
  return {
    /** A new browser binding: the value for the asking browser's cookie. */
    newBinding: (): string => randomToken(32),

    async request(ctx: RequestContext, email: string, binding: string, mailAllowed: boolean): Promise<void> {
      const { token, hash } = mintOpaqueToken('magicLink');
      const now = deps.clock.now();
      await deps.db.withTenant(system, async (tx) => {
        const found = await one<SealedPerson & { session_epoch: number; email_verified_at: Date | null }>(
          tx,
          sql`select id, email_sealed, name_sealed, session_epoch, email_verified_at from users where ${await userWithEmail(deps.sealer, tx, email)}`,
        );
        const user = found && (await withPeople(deps.sealer, tx, [found]))[0];
        // An address not proven yet is not a way in: it may have been registered by someone else.
        const sent = Boolean(user?.email_verified_at) && mailAllowed;
        if (user && sent) {
          await exec(
            tx,
            sql`insert into magic_links (token_hash, user_id, browser_hash, session_epoch, created_at, expires_at)
                values (${hash}, ${user.id}, ${sha256Hex(binding)}, ${user.session_epoch}, ${now.toISOString()},
                        ${new Date(now.getTime() + MAGIC_LINK_TTL_MS).toISOString()})`,
          );
          await deps.mail.enqueue(tx, {
            to: user.email,
            subject: 'Your Palisade sign-in link',
            body: `Sign in: ${page}#token=${token}\nOpen it in the browser where you asked for it. It expires in 15 minutes and works once.\n` +
              'If you did not ask for it, ignore this message: nobody can use it from another browser.',
          });
        }
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, {
          action: 'auth.magic_link_requested',
          target: user ? { type: 'user', id: user.id } : undefined,
          details: { email: email.slice(0, 254), known: Boolean(user), sent, ...(mailAllowed ? {} : { mailCapped: true }) },
          actor: { type: 'anonymous', id: null },
        });
      });
    },

    /**
     * Spends the link, if it is live, unspent, for this browser and issued under the account's
     * current session epoch. Every refusal is the same `token_invalid`; a wrong browser does not
     * spend it (the rightful browser may still use it).
     */
    async redeem(ctx: RequestContext, token: string, binding: string | undefined): Promise<MagicLinkUser> {
      const tokenHash = opaqueTokenHash('magicLink', token);
      if (!tokenHash) throw new AppError('token_invalid');
      const outcome = await deps.db.withTenant(system, async (tx): Promise<{ user: MagicLinkUser } | { refused: string; userId: string | null }> => {
        const r = await one<{ user_id: string; browser_hash: string; session_epoch: number; expires_at: Date; used_at: Date | null }>(
          tx,
          sql`select user_id, browser_hash, session_epoch, expires_at, used_at from magic_links where token_hash = ${tokenHash} for update`,
        );
        if (!r) return { refused: 'unknown', userId: null };
        const sameBrowser = binding !== undefined && safeEqual(sha256Hex(binding), r.browser_hash);
        const row = await one<SealedPerson & { session_epoch: number; mfa_enabled: boolean }>(
          tx, sql`select id, email_sealed, name_sealed, session_epoch, mfa_enabled from users where id = ${r.user_id}`,
        );
        const u = row && (await withPeople(deps.sealer, tx, [row]))[0];
        if (r.used_at) return { refused: 'used', userId: r.user_id };
        if (!sameBrowser) return { refused: 'other_browser', userId: r.user_id };
        if (!u || r.expires_at <= deps.clock.now() || u.session_epoch !== r.session_epoch) return { refused: 'expired_or_revoked', userId: r.user_id };
        await exec(tx, sql`update magic_links set used_at = ${deps.clock.now().toISOString()} where token_hash = ${tokenHash}`);
        return { user: { id: u.id, email: u.email, name: u.name, sessionEpoch: u.session_epoch, mfaEnabled: u.mfa_enabled } };
      });
      if ('user' in outcome) return outcome.user;
      // A made-up token names nobody: refused like a forged reset token, with no event (a flood
      // of them would otherwise fill the trail). A real link misused is evidence about its account.
      // After the transaction: the audit append takes a connection of its own.
      if (outcome.userId) {
        await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
          action: 'auth.login_failed', target: { type: 'user', id: outcome.userId }, actor: { type: 'anonymous', id: null },
          details: { method: 'magic_link', reason: outcome.refused },
        });
      }
      throw new AppError('token_invalid');
    },
  };
}

export type MagicLinkService = ReturnType<typeof createMagicLinkService>;
