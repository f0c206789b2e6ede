import { sql } from 'kysely';
import { newId, randomToken, sha256Hex } from '../../crypto/index.js';
import type { AuditAction } from '../../kernel/audit-actions.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { exec, one, type Database, type Tx } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import type { MailPort } from '../mail/index.js';
import { insertOrg } from '../tenancy/index.js';
import type { Lockout } from './lockout.js';
import { assertPasswordAcceptable, dummyHash, hashPassword, verifyPassword } from './passwords.js';

export const RESET_TTL_MS = 30 * 60 * 1000;

export interface UserView {
  id: string;
  email: string;
  name: string;
}

export interface IdentityDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  mail: MailPort;
  publicOrigin: string;
  /** Every session of the user, except `keep`, must end (wired to the sessions domain). */
  revokeSessions(tx: Tx, userId: string, reason: string, keep?: string): Promise<void>;
  lockout: Lockout;
}

function isUniqueViolation(err: unknown): boolean {
  return (err as { code?: string }).code === '23505';
}

export function createIdentityService(deps: IdentityDeps) {
  const system = { orgId: SYSTEM_ORG_ID };

  async function findByEmail(tx: Tx, email: string) {
    return one<{ id: string; email: string; name: string; password_hash: string | null; session_epoch: number; mfa_enabled: boolean }>(
      tx,
      sql`select id, email, name, password_hash, session_epoch, mfa_enabled from users where lower(email) = lower(${email})`,
    );
  }

  /**
   * A password typed by a signed-in user (step-up, password change): it takes a lockout slot
   * first (a locked account is refused even with the right one), costs one argon2 verification
   * whatever the outcome, and `failedAction` is audited with the reason. On success, as at
   * sign-in: with a second factor the slot is handed back without clearing the count.
   */
  async function checkOwnPassword(ctx: RequestContext, userId: string, password: string, failedAction: AuditAction): Promise<void> {
    const u = await deps.db.withSystem('password re-check', (tx) =>
      one<{ password_hash: string | null; mfa_enabled: boolean }>(tx, sql`select password_hash, mfa_enabled from users where id = ${userId}`),
    );
    const slot = u?.password_hash ? await deps.lockout.reserve(userId) : null;
    const checkable = Boolean(u?.password_hash && slot?.granted);
    const ok = (await verifyPassword(checkable && u?.password_hash ? u.password_hash : await dummyHash(), password)) && checkable;
    if (!ok) {
      await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
        action: failedAction, result: 'failure', target: { type: 'user', id: userId },
        details: { reason: slot && !slot.granted ? 'locked' : 'bad_password' },
      });
      if (slot?.granted && slot.locksNow) {
        await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, { action: 'auth.account_locked', result: 'denied', target: { type: 'user', id: userId } });
      }
      throw new AppError('invalid_credentials');
    }
    if (u?.mfa_enabled) await deps.lockout.release(userId);
    else await deps.lockout.succeeded(userId);
  }

  return {
    /**
     * Creates a user and, when an org is named, an org they own, in one transaction. Without
     * an org (someone joining by invitation) the evidence goes to the system chain.
     */
    async register(
      ctx: RequestContext,
      input: { email: string; password: string; name: string; orgName?: string | undefined; orgSlug?: string | undefined },
    ): Promise<{ user: UserView; orgId: string | null }> {
      assertPasswordAcceptable(input.password);
      if (Boolean(input.orgName) !== Boolean(input.orgSlug)) {
        throw new AppError('validation_failed', 'orgName and orgSlug go together');
      }
      const passwordHash = await hashPassword(input.password);
      const userId = newId();
      const orgId = input.orgSlug && input.orgName ? newId() : null;
      const chain = orgId ?? SYSTEM_ORG_ID;
      await deps.db.withTenant({ orgId: chain, userId }, async (tx) => {
        try {
          await exec(tx, sql`savepoint create_user`);
          await exec(
            tx,
            sql`insert into users (id, email, name, password_hash, password_changed_at)
                values (${userId}, ${input.email}, ${input.name}, ${passwordHash}, ${deps.clock.now().toISOString()})`,
          );
          await exec(tx, sql`release savepoint create_user`);
        } catch (err) {
          if (isUniqueViolation(err)) throw new AppError('conflict', 'registration failed: use another email or sign in');
          throw err;
        }
        if (orgId && input.orgSlug && input.orgName) {
          await insertOrg(deps, tx, ctx, { id: orgId, slug: input.orgSlug, name: input.orgName }, userId);
        }
        await deps.audit.append(tx, chain, ctx, {
          action: 'auth.registered',
          target: { type: 'user', id: userId },
          actor: { type: 'user', id: userId, role: orgId ? 'owner' : null },
        });
      });
      return { user: { id: userId, email: input.email, name: input.name }, orgId };
    },

    /**
     * Same error and similar cost whether the email is unknown, the password wrong or the
     * account locked: each pays for one argon2 verification. The attempt takes a lockout slot
     * before the password is checked (lockout.ts). With a second factor enabled, a right
     * password hands its slot back but does not clear the count: only the second factor does,
     * so knowing the password does not buy unlimited code guesses.
     */
    async verifyCredentials(
      ctx: RequestContext,
      email: string,
      password: string,
    ): Promise<UserView & { sessionEpoch: number; mfaEnabled: boolean }> {
      const user = await deps.db.withSystem('login lookup', (tx) => findByEmail(tx, email));
      const slot = user?.password_hash ? await deps.lockout.reserve(user.id) : null;
      const checkable = Boolean(user?.password_hash && slot?.granted);
      const ok = (await verifyPassword(checkable && user?.password_hash ? user.password_hash : await dummyHash(), password)) && checkable;
      if (!user || !ok) {
        const reason = !user ? 'unknown_email' : slot && !slot.granted ? 'locked' : 'bad_password';
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
        if (user && slot?.granted && slot.locksNow) {
          await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
            action: 'auth.account_locked', result: 'denied', target: { type: 'user', id: user.id }, actor: { type: 'anonymous', id: null },
          });
        }
        throw new AppError('invalid_credentials');
      }
      if (user.mfa_enabled) await deps.lockout.release(user.id);
      else await deps.lockout.succeeded(user.id);
      return { id: user.id, email: user.email, name: user.name, sessionEpoch: user.session_epoch, mfaEnabled: user.mfa_enabled };
    },

    /** A password typed again for a step-up (accounts without a second factor); counts toward lockout. */
    reauthenticate: (ctx: RequestContext, userId: string, password: string) => checkOwnPassword(ctx, userId, password, 'auth.step_up_failed'),

    async getUser(userId: string): Promise<UserView> {
      const u = await deps.db.withSystem('read own profile', (tx) =>
        one<UserView>(tx, sql`select id, email, name from users where id = ${userId}`),
      );
      if (!u) throw new AppError('unauthenticated');
      return u;
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
    async requestReset(ctx: RequestContext, email: string): Promise<void> {
      const secret = randomToken(32);
      const now = deps.clock.now();
      await deps.db.withTenant(system, async (tx) => {
        const user = await findByEmail(tx, email);
        if (user) {
          await exec(
            tx,
            sql`insert into password_resets (token_hash, user_id, created_at, expires_at)
                values (${sha256Hex(secret)}, ${user.id}, ${now.toISOString()}, ${new Date(now.getTime() + RESET_TTL_MS).toISOString()})`,
          );
          await deps.mail.enqueue(tx, {
            to: user.email,
            subject: 'Reset your Palisade password',
            body: `Reset your password: ${deps.publicOrigin}/reset-password#token=pal_pwr_${secret}\nThis link expires in 30 minutes and works once.`,
          });
        }
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, {
          action: 'auth.password_reset_requested',
          target: user ? { type: 'user', id: user.id } : undefined,
          details: { email: email.slice(0, 254), known: Boolean(user) },
          actor: { type: 'anonymous', id: null },
        });
      });
    },

    async confirmReset(ctx: RequestContext, token: string, password: string): Promise<void> {
      const m = /^pal_pwr_([A-Za-z0-9_-]{43})$/.exec(token);
      if (!m) throw new AppError('token_invalid');
      assertPasswordAcceptable(password);
      const hashed = await hashPassword(password);
      const tokenHash = sha256Hex(m[1] as string);
      await deps.db.withTenant(system, async (tx) => {
        const r = await one<{ user_id: string; expires_at: Date; used_at: Date | null }>(
          tx,
          sql`select user_id, expires_at, used_at from password_resets where token_hash = ${tokenHash} for update`,
        );
        if (!r || r.used_at || r.expires_at <= deps.clock.now()) throw new AppError('token_invalid');
        await exec(tx, sql`update password_resets set used_at = ${deps.clock.now().toISOString()} where user_id = ${r.user_id} and used_at is null`);
        // Proof of the mailbox ends a lockout too: the lock guards the old password, now replaced.
        await exec(
          tx,
          sql`update users set password_hash = ${hashed}, password_changed_at = ${deps.clock.now().toISOString()}, failed_logins = 0, locked_until = null
              where id = ${r.user_id}`,
        );
        await deps.revokeSessions(tx, r.user_id, 'password_reset');
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, {
          action: 'auth.password_reset',
          target: { type: 'user', id: r.user_id },
          actor: { type: 'user', id: r.user_id },
        });
      });
    },
  };
}

export type IdentityService = ReturnType<typeof createIdentityService>;
