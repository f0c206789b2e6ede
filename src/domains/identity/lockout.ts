import { sql } from 'kysely';
import { exec, one, type Database, type Tx } from '../../db/database.js';

export interface LockoutPolicy {
  threshold: number;
  seconds: number;
}

/**
 * The one statement that ends a lockout and forgets failed attempts: a successful proof, a
 * completed password reset, an operator's unlock. Says what there was to clear (null: no such
 * account), so an operator is not told "unlocked" about an account that was not locked.
 */
export async function clearLockout(tx: Tx, userId: string, now: Date): Promise<{ wasLocked: boolean; failures: number } | null> {
  return (
    (await one<{ wasLocked: boolean; failures: number }>(
      tx,
      sql`with before as (select id, failed_logins, locked_until from users where id = ${userId} for update),
              cleared as (update users u set failed_logins = 0, locked_until = null from before b
                          where u.id = b.id and (b.failed_logins <> 0 or b.locked_until is not null) returning u.id)
          select coalesce(locked_until > ${now.toISOString()}::timestamptz, false) as "wasLocked", failed_logins::int as failures from before`,
    )) ?? null
  );
}

export type Reservation = { granted: true; attempt: number; locksNow: boolean } | { granted: false };

/**
 * Account lockout, stored with the account so that every server instance counts the same
 * attempts. An attempt (password, TOTP or recovery code) reserves its slot before the secret is
 * checked, in one UPDATE: at most `threshold` checks run per lockout period however many
 * requests race, on however many instances. The attempt that takes the last slot locks the
 * account; if it then succeeds, success clears the lock like any other.
 */
export function createLockout(db: Database, policy: LockoutPolicy, now: () => Date) {
  return {
    async reserve(userId: string): Promise<Reservation> {
      const at = now();
      const until = new Date(at.getTime() + policy.seconds * 1000);
      // An expired lock starts a fresh count; an active one grants nothing.
      const r = await db.withSystem('lockout: reserve an attempt', (tx) =>
        one<{ failed_logins: number }>(
          tx,
          sql`update users set
                failed_logins = case when locked_until is not null and locked_until <= ${at.toISOString()} then 1 else failed_logins + 1 end,
                locked_until = case
                  when (case when locked_until is not null and locked_until <= ${at.toISOString()} then 1 else failed_logins + 1 end) >= ${policy.threshold}::int
                    then ${until.toISOString()}::timestamptz
                  when locked_until is not null and locked_until <= ${at.toISOString()} then null
                  else locked_until end
              where id = ${userId} and (locked_until is null or locked_until <= ${at.toISOString()})
              returning failed_logins`,
        ),
      );
      if (!r) return { granted: false };
      return { granted: true, attempt: r.failed_logins, locksNow: r.failed_logins >= policy.threshold };
    },

    /**
     * A right password of an account with a second factor: the slot it took is handed back
     * (a lock it set lifted) without clearing earlier failures.
     */
    async release(userId: string): Promise<void> {
      await db.withSystem('lockout: hand a slot back', (tx) =>
        exec(
          tx,
          sql`update users set failed_logins = greatest(failed_logins - 1, 0),
                locked_until = case when failed_logins - 1 < ${policy.threshold}::int then null else locked_until end
              where id = ${userId}`,
        ),
      );
    },

    /** The attempt succeeded: the count starts over (and a lock its own reservation set is lifted). */
    async succeeded(userId: string): Promise<void> {
      await db.withSystem('lockout: success resets', (tx) => clearLockout(tx, userId, now()));
    },
  };
}

export type Lockout = ReturnType<typeof createLockout>;
