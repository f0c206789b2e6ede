import { sql } from 'kysely';
import { mintOpaqueToken, opaqueTokenHash, randomCode, sha256Hex } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { personOf } from './people.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { exec, one, type Database, type Tx } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import type { MailPort } from '../mail/index.js';
import { notifyFactorAdded, recordAccountLocked, settleFactors, type FactorSessionEffects } from './factors.js';
import type { Lockout } from './lockout.js';
import type { MfaStatus, RecoveryCodes, TotpEnrollment } from './responses.js';
import { matchTotpStep, newTotpSecret, otpauthUri, qrDataUrl } from './totp.js';

/** The first step of a pending sign-in was an org's identity provider, not a password. */
export interface SsoOrigin {
  orgId: string;
  connectionId: string;
}

/** What a pending second step began with, carried to the session it ends in. */
export interface ChallengeOrigin {
  sso?: SsoOrigin | undefined;
  /** A break-glass sign-in of an owner of this org (its password step passed). */
  breakGlassOrgId?: string | undefined;
}

export const RECOVERY_CODE_COUNT = 10;
export const CHALLENGE_TTL_MS = 5 * 60 * 1000;
const CODE_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';

/** What proves the second factor: one of a TOTP code or a recovery code. */
export interface FactorProof {
  code?: string | undefined;
  recoveryCode?: string | undefined;
}
export type FactorMethod = 'totp' | 'recovery_code';

export interface MfaDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  lockout: Lockout;
  mail: MailPort;
  sessionEffects: FactorSessionEffects;
}

const secretRef = (userId: string) => ({ scope: 'mfa', table: 'totp_credentials', column: 'secret_sealed', row: userId });

/** 12 characters of a 31-letter alphabet (~59 bits), shown as xxxx-xxxx-xxxx; dashes and case do not matter. */
function newRecoveryCode(): string {
  const c = randomCode(12, CODE_ALPHABET);
  return `${c.slice(0, 4)}-${c.slice(4, 8)}-${c.slice(8)}`;
}
const recoveryHash = (code: string) => sha256Hex(`palisade-recovery:${code.toLowerCase().replace(/[^a-z0-9]/g, '')}`);

export function createMfaService(deps: MfaDeps) {
  const system = { orgId: SYSTEM_ORG_ID };
  const now = () => deps.clock.now();

  /** Replaces the user's recovery codes (the old set stops working) and returns the new ones, once. */
  async function issueRecoveryCodes(tx: Tx, userId: string): Promise<string[]> {
    await exec(tx, sql`delete from recovery_codes where user_id = ${userId}`);
    const codes = Array.from({ length: RECOVERY_CODE_COUNT }, newRecoveryCode);
    for (const c of codes) {
      await exec(tx, sql`insert into recovery_codes (user_id, code_hash, created_at) values (${userId}, ${recoveryHash(c)}, ${now().toISOString()})`);
    }
    return codes;
  }

  /** Checks the proof; true only for a TOTP step newer than any accepted before, or an unused recovery code. */
  async function check(tx: Tx, userId: string, proof: FactorProof): Promise<FactorMethod | null> {
    if (proof.code) {
      const row = await one<{ secret_sealed: string; last_step: number }>(
        tx,
        sql`select secret_sealed, last_step from totp_credentials where user_id = ${userId} and confirmed_at is not null for update`,
      );
      if (!row) return null;
      const step = matchTotpStep(await deps.sealer.open(tx, secretRef(userId), row.secret_sealed), proof.code, now());
      if (step === null || step <= Number(row.last_step)) return null;
      await exec(tx, sql`update totp_credentials set last_step = ${step} where user_id = ${userId}`);
      return 'totp';
    }
    if (proof.recoveryCode) {
      const n = await exec(
        tx,
        sql`update recovery_codes set used_at = ${now().toISOString()}
            where user_id = ${userId} and code_hash = ${recoveryHash(proof.recoveryCode)} and used_at is null`,
      );
      return n === 1 ? 'recovery_code' : null;
    }
    return null;
  }

  return {
    async status(userId: string): Promise<MfaStatus> {
      const r = await deps.db.withTenant(system, (tx) =>
        one<{ enabled: boolean; totp: boolean; passkeys: number; left: number }>(
          tx,
          sql`select u.mfa_enabled as enabled,
                     exists (select 1 from totp_credentials t where t.user_id = u.id and t.confirmed_at is not null) as totp,
                     (select count(*)::int from passkeys p where p.user_id = u.id) as passkeys,
                     (select count(*)::int from recovery_codes r where r.user_id = u.id and r.used_at is null) as left
              from users u where u.id = ${userId}`,
        ),
      );
      return { enabled: r?.enabled ?? false, totp: r?.totp ?? false, passkeys: r?.passkeys ?? 0, recoveryCodesLeft: r?.left ?? 0 };
    },

    /** A new, unconfirmed secret (replacing an unconfirmed one): it counts only once a code confirms it. */
    async enrollTotp(ctx: RequestContext, userId: string): Promise<TotpEnrollment> {
      const secret = newTotpSecret();
      const user = await deps.db.withTenant(system, async (tx) => {
        const person = await personOf(deps.sealer, tx, userId);
        if (!person) throw new AppError('unauthenticated');
        const user = { id: userId, email: person.email };
        const existing = await one<{ confirmed_at: Date | null }>(tx, sql`select confirmed_at from totp_credentials where user_id = ${user.id} for update`);
        if (existing?.confirmed_at) throw new AppError('conflict', 'an authenticator app is already enabled: disable it first');
        const sealed = await deps.sealer.seal(tx, secretRef(user.id), secret);
        await exec(
          tx,
          sql`insert into totp_credentials (user_id, secret_sealed, created_at) values (${user.id}, ${sealed}, ${now().toISOString()})
              on conflict (user_id) do update set secret_sealed = excluded.secret_sealed, created_at = excluded.created_at, last_step = 0`,
        );
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.mfa_enrollment_started', target: { type: 'user', id: user.id } });
        return user;
      });
      const uri = otpauthUri(secret, user.email, 'Palisade');
      return { secret, otpauthUri: uri, qrCode: await qrDataUrl(uri) };
    },

    /** The first valid code turns MFA on; the ten recovery codes are returned here and never again. */
    async confirmTotp(ctx: RequestContext, userId: string, code: string): Promise<RecoveryCodes> {
      return deps.db.withTenant(system, async (tx) => {
        const row = await one<{ secret_sealed: string; confirmed_at: Date | null }>(
          tx,
          sql`select secret_sealed, confirmed_at from totp_credentials where user_id = ${userId} for update`,
        );
        if (!row || row.confirmed_at) throw new AppError('conflict', 'no authenticator app enrollment is pending');
        const step = matchTotpStep(await deps.sealer.open(tx, secretRef(userId), row.secret_sealed), code, now());
        if (step === null) throw new AppError('invalid_credentials');
        await exec(tx, sql`update totp_credentials set confirmed_at = ${now().toISOString()}, last_step = ${step} where user_id = ${userId}`);
        await exec(tx, sql`update users set mfa_enabled = true where id = ${userId}`);
        // In this transaction: MFA is never on while older password step-ups still count, nor
        // without the confirming session marked as proven with the new factor.
        await deps.sessionEffects.factorAdded(tx, ctx, userId);
        const recoveryCodes = await issueRecoveryCodes(tx, userId);
        await notifyFactorAdded(tx, deps, userId, { kind: 'authenticator_app' }, ctx);
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.mfa_enabled', target: { type: 'user', id: userId }, details: { method: 'totp' } });
        return { recoveryCodes };
      });
    },

    async regenerateRecoveryCodes(ctx: RequestContext, userId: string): Promise<RecoveryCodes> {
      return deps.db.withTenant(system, async (tx) => {
        const u = await one<{ mfa_enabled: boolean }>(tx, sql`select mfa_enabled from users where id = ${userId} for update`);
        if (!u?.mfa_enabled) throw new AppError('conflict', 'enable a second factor first');
        const recoveryCodes = await issueRecoveryCodes(tx, userId);
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.recovery_codes_regenerated', target: { type: 'user', id: userId } });
        return { recoveryCodes };
      });
    },

    /**
     * Checks a second factor for `userId`. Every attempt takes a lockout slot first (shared
     * with password attempts), so codes cannot be guessed faster than passwords.
     */
    async verifyFactor(ctx: RequestContext, userId: string, proof: FactorProof, purpose: string): Promise<FactorMethod> {
      const slot = await deps.lockout.reserve(userId);
      const method = slot.granted ? await deps.db.withTenant(system, (tx) => check(tx, userId, proof)) : null;
      if (!method) {
        await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
          action: 'auth.mfa_failed', result: 'failure', target: { type: 'user', id: userId },
          details: { purpose, reason: slot.granted ? 'bad_code' : 'locked' }, actor: { type: 'user', id: userId },
        });
        if (slot.granted && slot.locksNow) await recordAccountLocked(deps, ctx, userId);
        throw new AppError('invalid_credentials');
      }
      await deps.lockout.succeeded(userId);
      if (method === 'recovery_code') {
        await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, { action: 'auth.recovery_code_used', target: { type: 'user', id: userId }, details: { purpose } });
      }
      return method;
    },

    /**
     * Turns the authenticator app and the recovery codes off; the caller has just verified a
     * factor in this same request. MFA stays on while passkeys remain (they are removed one by
     * one); returns whether it is still on.
     */
    async disable(ctx: RequestContext, userId: string): Promise<{ enabled: boolean }> {
      return deps.db.withTenant(system, async (tx) => {
        await exec(tx, sql`delete from totp_credentials where user_id = ${userId}`);
        // Recovery codes belong to the account's MFA as a whole: turning the app off removes them
        // even while passkeys remain (new ones can be generated).
        await exec(tx, sql`delete from recovery_codes where user_id = ${userId}`);
        const { enabled } = await settleFactors(tx, userId, deps.sessionEffects);
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.mfa_disabled', target: { type: 'user', id: userId }, details: { stillEnabled: enabled } });
        return { enabled };
      });
    },

    /** The password step passed: a single-use, five-minute token for the second step (not a session). */
    async startChallenge(userId: string, sessionEpoch: number, origin: ChallengeOrigin = {}): Promise<string> {
      const { sso, breakGlassOrgId } = origin;
      const { token, hash } = mintOpaqueToken('mfaChallenge');
      const at = now();
      await deps.db.withTenant(system, async (tx) => {
        // One pending challenge per user: a new password step supersedes the old one.
        await exec(tx, sql`delete from mfa_challenges where user_id = ${userId}`);
        await exec(
          tx,
          sql`insert into mfa_challenges (token_hash, user_id, session_epoch, created_at, expires_at, sso_org_id, sso_connection_id, break_glass_org_id)
              values (${hash}, ${userId}, ${sessionEpoch}, ${at.toISOString()}, ${new Date(at.getTime() + CHALLENGE_TTL_MS).toISOString()},
                      ${sso?.orgId ?? null}, ${sso?.connectionId ?? null}, ${breakGlassOrgId ?? null})`,
        );
      });
      return token;
    },

    /** The user and epoch of a live challenge, or token_invalid. Not consumed until `consumeChallenge`. */
    async readChallenge(token: string): Promise<{ userId: string; sessionEpoch: number; tokenHash: string; sso: SsoOrigin | undefined; breakGlassOrgId: string | undefined }> {
      const tokenHash = opaqueTokenHash('mfaChallenge', token);
      if (!tokenHash) throw new AppError('token_invalid');
      const r = await deps.db.withTenant(system, (tx) =>
        one<{ user_id: string; session_epoch: number; expires_at: Date; used_at: Date | null; sso_org_id: string | null; sso_connection_id: string | null; break_glass_org_id: string | null }>(
          tx,
          sql`select user_id, session_epoch, expires_at, used_at, sso_org_id, sso_connection_id, break_glass_org_id from mfa_challenges where token_hash = ${tokenHash}`,
        ),
      );
      if (!r || r.used_at || r.expires_at <= now()) throw new AppError('token_invalid');
      const sso = r.sso_org_id && r.sso_connection_id ? { orgId: r.sso_org_id, connectionId: r.sso_connection_id } : undefined;
      return { userId: r.user_id, sessionEpoch: r.session_epoch, tokenHash, sso, breakGlassOrgId: r.break_glass_org_id ?? undefined };
    },

    /** Marks the challenge used; false when another request used it first (only one session per challenge). */
    async consumeChallenge(tx: Tx, tokenHash: string): Promise<boolean> {
      const n = await exec(
        tx,
        sql`update mfa_challenges set used_at = ${now().toISOString()} where token_hash = ${tokenHash} and used_at is null and expires_at > ${now().toISOString()}`,
      );
      return n === 1;
    },
  };
}

export type MfaService = ReturnType<typeof createMfaService>;
