import { sql } from 'kysely';
import { mintOpaqueToken, newId, opaqueTokenHash, sha256Hex } from '../../crypto/index.js';
import type { AuditAction } from '../../kernel/audit-actions.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { exec, one, writeUnlessTaken, type Database, type Tx } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/sealer.js';
import type { MailPort } from '../mail/index.js';
import { recordAccountLocked } from './factors.js';
import { clearLockout, type Lockout } from './lockout.js';
import { assertPasswordAcceptable, dummyHash, hashPassword, verifyPassword } from './passwords.js';
import { insertUserSql, personOf, userWithEmail, withPeople, type SealedPerson } from './people.js';
import type { UserView } from './responses.js';

export const RESET_TTL_MS = 30 * 60 * 1000;
export const EMAIL_VERIFICATION_TTL_MS = 24 * 3600 * 1000;

/** What registration answers, whether the address was new or taken (only the mail differs). */
export const REGISTRATION_ANSWER = { status: 'Check your mailbox: we sent a message to that address to finish.' } as const;

export type { UserView };

export interface IdentityDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  mail: MailPort;
  /** Seals accounts' addresses and names, and computes the blind index they are found by (people.ts). */
  sealer: Sealer;
  publicOrigin: string;
  /** Every session of the user, except `keep`, must end (wired to the sessions domain). */
  revokeSessions(tx: Tx, userId: string, reason: string, keep?: string): Promise<void>;
  lockout: Lockout;
  /** SSO enforcement (sso/enforcement.ts): refuses local sign-up and password resets for addresses it covers. */
  ssoGate: LocalSignInGate;
}

/** Refuses (sso_required) a local credential for an address under an org's SSO enforcement. */
export interface LocalSignInGate {
  assertLocalSignIn(email: string): Promise<void>;
  assertLocalSignInIn(tx: Tx, email: string): Promise<void>;
}

export function createIdentityService(deps: IdentityDeps) {
  const system = { orgId: SYSTEM_ORG_ID };

  async function findByEmail(tx: Tx, email: string) {
    const r = await one<SealedPerson & { password_hash: string | null; session_epoch: number; mfa_enabled: boolean; email_verified_at: Date | null }>(
      tx,
      sql`select id, email_sealed, name_sealed, password_hash, session_epoch, mfa_enabled, email_verified_at from users
          where ${await userWithEmail(deps.sealer, tx, email)}`,
    );
    return r && (await withPeople(deps.sealer, tx, [r]))[0];
  }

  const verifyLink = (token: string) => `${deps.publicOrigin}/verify-email#token=${token}`;
  const resetPage = `${deps.publicOrigin}/reset-password`;

  /** A new single-use verification link for the user (older live ones stay valid until they expire). */
  async function issueVerification(tx: Tx, userId: string): Promise<string> {
    const now = deps.clock.now();
    // Spent and expired links go as new ones are made: the table holds live links only.
    await exec(tx, sql`delete from email_verifications where user_id = ${userId} and (used_at is not null or expires_at <= ${now.toISOString()})`);
    const { token, hash } = mintOpaqueToken('emailVerification');
    await exec(
      tx,
      sql`insert into email_verifications (token_hash, user_id, created_at, expires_at)
          values (${hash}, ${userId}, ${now.toISOString()}, ${new Date(now.getTime() + EMAIL_VERIFICATION_TTL_MS).toISOString()})`,
    );
    return token;
  }

  /**
   * The mailbox is proven: the account may sign in and accept invitations from now on. Every
   * live verification link of the user is spent with it. True when the account was unverified.
   */
  async function markVerified(tx: Tx, userId: string): Promise<boolean> {
    const at = deps.clock.now().toISOString();
    const n = await exec(tx, sql`update users set email_verified_at = ${at} where id = ${userId} and email_verified_at is null`);
    await exec(tx, sql`update email_verifications set used_at = ${at} where user_id = ${userId} and used_at is null`);
    return n === 1;
  }

  /**
   * A password typed by a signed-in user (step-up, password change): it takes a lockout slot
   * first (a locked account is refused even with the right one), costs one argon2 verification
   * whatever the outcome, and `failedAction` is audited with the reason. On success, as at
   * sign-in: with a second factor the slot is handed back without clearing the count.
   */
  /**
   * The one password check, for sign-in and re-checks alike: the attempt takes a lockout slot
   * first (a locked account is refused even with the right password), and it costs one argon2
   * verification whatever the account (none, no password, locked). On success with a second
   * factor the slot is handed back without clearing the count: only the second factor does, so
   * knowing the password does not buy unlimited code guesses.
   */
  async function passwordMatches(
    user: { id: string; password_hash: string | null; mfa_enabled: boolean } | undefined,
    password: string,
  ): Promise<{ ok: true } | { ok: false; reason: 'unknown_email' | 'locked' | 'bad_password'; locksNow: boolean }> {
    const slot = user?.password_hash ? await deps.lockout.reserve(user.id) : null;
    const checkable = Boolean(user?.password_hash && slot?.granted);
    const ok = (await verifyPassword(checkable && user?.password_hash ? user.password_hash : await dummyHash(), password)) && checkable;
    if (!user || !ok) {
      const reason = !user ? 'unknown_email' : slot && !slot.granted ? 'locked' : 'bad_password';
      return { ok: false, reason, locksNow: Boolean(slot?.granted && slot.locksNow) };
    }
    if (user.mfa_enabled) await deps.lockout.release(user.id);
    else await deps.lockout.succeeded(user.id);
    return { ok: true };
  }

  /** A password typed by a signed-in user (step-up, password change); `failedAction` is audited with the reason. */
  async function checkOwnPassword(ctx: RequestContext, userId: string, password: string, failedAction: AuditAction): Promise<void> {
    const u = await deps.db.withSystem('password re-check', (tx) =>
      one<{ password_hash: string | null; mfa_enabled: boolean }>(tx, sql`select password_hash, mfa_enabled from users where id = ${userId}`),
    );
    const check = await passwordMatches(u && { id: userId, ...u }, password);
    if (!check.ok) {
      await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
        action: failedAction, result: 'failure', target: { type: 'user', id: userId },
        details: { reason: check.reason === 'locked' ? 'locked' : 'bad_password' },
      });
      if (check.locksNow) await recordAccountLocked(deps, ctx, userId);
      throw new AppError('invalid_credentials');
    }
  }

  return {
    /**
     * Answers the same, at the same cost (one argon2 hash), whether the address is new or taken,
     * so that registration tells nobody which addresses have accounts. What differs is the mail,
     * which only the mailbox's owner reads:
     * - a new address: the account is created unverified and the mail carries a verification link;
     * - a taken, unverified address: a new verification link, and a hint to reset the password
     *   when the reader does not know it (someone else may have registered their address);
     * - a taken, verified address: a notice that someone tried, with a hint to reset the password.
     * Nothing about the existing account changes. An unverified account cannot sign in
     * (verifyCredentials), so the link, confirmed with the password, is what opens it.
     */
    async register(ctx: RequestContext, input: { email: string; password: string; name: string }, mailAllowed = true): Promise<void> {
      // Over the mail cap for this address (review R5 finding B): the same answer and the same
      // work, without the mail.
      const enqueue: typeof deps.mail.enqueue = mailAllowed ? (tx, m) => deps.mail.enqueue(tx, m) : () => Promise.resolve();
      // Accounts of an SSO-enforcing org's domains come from its identity provider (JIT), never a password.
      await deps.ssoGate.assertLocalSignIn(input.email);
      assertPasswordAcceptable(input.password);
      const passwordHash = await hashPassword(input.password);
      const userId = newId();
      await deps.db.withTenant({ orgId: SYSTEM_ORG_ID, userId }, async (tx) => {
        const created = await writeUnlessTaken(
          tx,
          await insertUserSql(deps.sealer, tx, userId, { email: input.email, name: input.name }, {
            password_hash: passwordHash, password_changed_at: deps.clock.now().toISOString(),
          }),
        );
        if (created) {
          const token = await issueVerification(tx, userId);
          await enqueue(tx, {
            to: input.email,
            subject: 'Verify your email address for Palisade',
            body:
              `Confirm this address to finish creating your Palisade account: ${verifyLink(token)}\n` +
              'The page asks for the password you chose. The link expires in 24 hours and works once.\n' +
              'If you did not create an account, ignore this mail: nobody can sign in to it without this link.',
          });
          await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, {
            action: 'auth.registered', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
          });
          return;
        }
        const existing = await findByEmail(tx, input.email);
        if (existing && !existing.email_verified_at) {
          // Over the cap no link is made that nobody would receive.
          const token = mailAllowed ? await issueVerification(tx, existing.id) : '';
          await enqueue(tx, {
            to: existing.email,
            subject: 'Verify your email address for Palisade',
            body:
              'Someone (perhaps you) registered again with this address, which has an account that is not verified yet.\n' +
              `To verify it with the password chosen when it was created: ${verifyLink(token)}\n` +
              `If you do not know that password, or did not create the account, reset the password at ${resetPage} instead: ` +
              'that verifies the address too, and only the new password will work. The link expires in 24 hours.',
          });
        } else if (existing) {
          await enqueue(tx, {
            to: existing.email,
            subject: 'Someone tried to register with your email address',
            body:
              'Someone (perhaps you) tried to create a Palisade account with this address, which already has one. Nothing was changed.\n' +
              `If it was you, sign in instead. Forgot your password? Ask for a reset link at ${resetPage}.\n` +
              'If it was not you, you can ignore this mail.',
          });
        }
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, {
          action: 'auth.registration_duplicate',
          result: 'denied',
          target: existing ? { type: 'user', id: existing.id } : undefined,
          details: { emailVerified: Boolean(existing?.email_verified_at) },
          actor: { type: 'anonymous', id: null },
        });
      });
    },

    /**
     * Confirms a verification link. The link proves the mailbox; the password proves that whoever
     * holds the mailbox also chose the account's password. Both are needed: a link alone would let
     * someone who registered another person's address wait for that person to click, and keep
     * the account with their own password (pre-hijacking). A wrong password counts toward the
     * lockout and leaves the link usable; success spends every link of the account.
     */
    async verifyEmail(ctx: RequestContext, token: string, password: string): Promise<void> {
      const tokenHash = opaqueTokenHash('emailVerification', token);
      if (!tokenHash) throw new AppError('token_invalid');
      const live = await deps.db.withSystem('email verification lookup', (tx) =>
        one<{ user_id: string; expires_at: Date; used_at: Date | null }>(
          tx,
          sql`select user_id, expires_at, used_at from email_verifications where token_hash = ${tokenHash}`,
        ),
      );
      if (!live || live.used_at || live.expires_at <= deps.clock.now()) throw new AppError('token_invalid');
      await checkOwnPassword(ctx, live.user_id, password, 'auth.email_verification_failed');
      await deps.db.withTenant(system, async (tx) => {
        // Conditional: of two requests with the same link, one verifies and the other is refused.
        const spent = await exec(
          tx,
          sql`update email_verifications set used_at = ${deps.clock.now().toISOString()}
              where token_hash = ${tokenHash} and used_at is null and expires_at > ${deps.clock.now().toISOString()}`,
        );
        if (spent !== 1) throw new AppError('token_invalid');
        const changed = await markVerified(tx, live.user_id);
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, {
          action: 'auth.email_verified',
          target: { type: 'user', id: live.user_id },
          details: { via: 'link', alreadyVerified: !changed },
          actor: { type: 'user', id: live.user_id },
        });
      });
    },

    /** Always answers the same; mails a new link only when the address has an unverified account. */
    async resendVerification(ctx: RequestContext, email: string, mailAllowed = true): Promise<void> {
      await deps.db.withTenant(system, async (tx) => {
        const user = await findByEmail(tx, email);
        // Over the mail cap for this address (review R5 finding B): the same answer, no mail.
        const send = Boolean(user && !user.email_verified_at) && mailAllowed;
        if (user && send) {
          const token = await issueVerification(tx, user.id);
          await deps.mail.enqueue(tx, {
            to: user.email,
            subject: 'Verify your email address for Palisade',
            body:
              `Confirm this address for your Palisade account: ${verifyLink(token)}\n` +
              'The page asks for the password chosen when the account was created. The link expires in 24 hours and works once.\n' +
              `If you do not know that password, or did not create the account, reset the password at ${resetPage} instead: ` +
              'that verifies the address too.',
          });
        }
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, {
          action: 'auth.email_verification_requested',
          target: user ? { type: 'user', id: user.id } : undefined,
          details: { email: email.slice(0, 254), known: Boolean(user), sent: send },
          actor: { type: 'anonymous', id: null },
        });
      });
    },

    /**
     * Same error and similar cost whether the email is unknown, the password wrong or the
     * account locked (passwordMatches).
     */
    async verifyCredentials(
      ctx: RequestContext,
      email: string,
      password: string,
    ): Promise<UserView & { sessionEpoch: number; mfaEnabled: boolean }> {
      const user = await deps.db.withSystem('login lookup', (tx) => findByEmail(tx, email));
      const check = await passwordMatches(user, password);
      if (!user || !check.ok) {
        const reason = check.ok ? 'unknown_email' : check.reason;
        await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
          action: 'auth.login_failed',
          result: 'failure',
          target: user ? { type: 'user', id: user.id } : undefined,
          // What was typed is never kept (it may be a password in the wrong field): a known account
          // is named by its stored address, an unknown one by a hash that still correlates attempts.
          details: user
            ? { email: user.email, reason }
            : { emailHash: sha256Hex(email.trim().toLowerCase()).slice(0, 16), reason },
          actor: { type: 'anonymous', id: null },
        });
        if (user && !check.ok && check.locksNow) await recordAccountLocked(deps, ctx, user.id, { type: 'anonymous', id: null });
        throw new AppError('invalid_credentials');
      }
      if (!user.email_verified_at) {
        // Told only to whoever typed the right password. The account holds no session, factor
        // or key before this, so nothing set up by someone who registered another person's
        // address survives that person's password reset.
        await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
          action: 'auth.login_failed', result: 'denied', target: { type: 'user', id: user.id },
          details: { email: user.email, reason: 'email_unverified' }, actor: { type: 'anonymous', id: null },
        });
        throw new AppError('email_unverified', 'follow the link mailed at registration, or ask for a new one: POST /api/auth/verify-email/resend');
      }
      return { id: user.id, email: user.email, name: user.name, sessionEpoch: user.session_epoch, mfaEnabled: user.mfa_enabled };
    },

    /** A password typed again for a step-up (accounts without a second factor); counts toward lockout. */
    reauthenticate: (ctx: RequestContext, userId: string, password: string) => checkOwnPassword(ctx, userId, password, 'auth.step_up_failed'),

    async getUser(userId: string): Promise<UserView> {
      const u = await deps.db.withSystem('read own profile', (tx) => personOf(deps.sealer, tx, userId));
      if (!u) throw new AppError('unauthenticated');
      return { id: userId, email: u.email, name: u.name };
    },

    async changePassword(ctx: RequestContext, userId: string, sessionId: string, current: string, next: string): Promise<void> {
      // The current password typed here is a password attempt like any other: without the
      // lockout, a stolen session was an unlimited password-guessing oracle beside the locked login.
      await checkOwnPassword(ctx, userId, current, 'auth.password_change_failed');
      assertPasswordAcceptable(next);
      if (current === next) throw new AppError('weak_password', 'choose a password different from the current one');
      const hashed = await hashPassword(next);
      await deps.db.withTenant(system, async (tx) => {
        await exec(tx, sql`update users set password_hash = ${hashed}, password_changed_at = ${deps.clock.now().toISOString()} where id = ${userId}`);
        await deps.revokeSessions(tx, userId, 'password_changed', sessionId);
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.password_changed', target: { type: 'user', id: userId } });
      });
    },

    /** Always answers the same; mails a single-use token only when the account exists. */
    async requestReset(ctx: RequestContext, email: string, mailAllowed = true): Promise<void> {
      // By domain, before the account is looked up: the refusal tells nothing about the account.
      await deps.ssoGate.assertLocalSignIn(email);
      const { token, hash } = mintOpaqueToken('passwordReset');
      const now = deps.clock.now();
      await deps.db.withTenant(system, async (tx) => {
        const user = await findByEmail(tx, email);
        // Over the mail cap for this address (review R5 finding B): the same answer, and neither
        // a mail nor a token nobody would receive.
        if (user && mailAllowed) {
          await exec(
            tx,
            sql`insert into password_resets (token_hash, user_id, created_at, expires_at)
                values (${hash}, ${user.id}, ${now.toISOString()}, ${new Date(now.getTime() + RESET_TTL_MS).toISOString()})`,
          );
          await deps.mail.enqueue(tx, {
            to: user.email,
            subject: 'Reset your Palisade password',
            body: `Reset your password: ${resetPage}#token=${token}\nThis link expires in 30 minutes and works once.`,
          });
        }
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, {
          action: 'auth.password_reset_requested',
          target: user ? { type: 'user', id: user.id } : undefined,
          details: { email: email.slice(0, 254), known: Boolean(user), ...(mailAllowed ? {} : { mailCapped: true }) },
          actor: { type: 'anonymous', id: null },
        });
      });
    },

    async confirmReset(ctx: RequestContext, token: string, password: string): Promise<void> {
      const tokenHash = opaqueTokenHash('passwordReset', token);
      if (!tokenHash) throw new AppError('token_invalid');
      assertPasswordAcceptable(password);
      const hashed = await hashPassword(password);
      await deps.db.withTenant(system, async (tx) => {
        const r = await one<{ user_id: string; expires_at: Date; used_at: Date | null }>(
          tx,
          sql`select user_id, expires_at, used_at from password_resets where token_hash = ${tokenHash} for update`,
        );
        if (!r || r.used_at || r.expires_at <= deps.clock.now()) throw new AppError('token_invalid');
        // A link mailed before the org switched SSO enforcement on opens nothing now.
        const owner = await personOf(deps.sealer, tx, r.user_id);
        if (owner) await deps.ssoGate.assertLocalSignInIn(tx, owner.email);
        await exec(tx, sql`update password_resets set used_at = ${deps.clock.now().toISOString()} where user_id = ${r.user_id} and used_at is null`);
        // Proof of the mailbox ends a lockout too: the lock guards the old password, now replaced.
        await exec(
          tx,
          sql`update users set password_hash = ${hashed}, password_changed_at = ${deps.clock.now().toISOString()} where id = ${r.user_id}`,
        );
        await clearLockout(tx, r.user_id, deps.clock.now());
        await deps.revokeSessions(tx, r.user_id, 'password_reset');
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, {
          action: 'auth.password_reset',
          target: { type: 'user', id: r.user_id },
          actor: { type: 'user', id: r.user_id },
        });
        // The reset link went to the mailbox and the password is now the mailbox owner's: that
        // proves the address, and whatever password someone else registered it with is gone.
        if (await markVerified(tx, r.user_id)) {
          await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, {
            action: 'auth.email_verified', target: { type: 'user', id: r.user_id }, details: { via: 'password_reset' }, actor: { type: 'user', id: r.user_id },
          });
        }
      });
    },
  };
}

export type IdentityService = ReturnType<typeof createIdentityService>;
