import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
  type AuthenticationResponseJSON,
  type RegistrationResponseJSON,
} from '@simplewebauthn/server';
import { sql } from 'kysely';
import { mintOpaqueToken, newId, opaqueTokenHash } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { personOf } from './people.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { exec, one, rows, type Database } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import type { MailPort } from '../mail/index.js';
import type { Sealer } from '../keys/sealer.js';
import { notifyFactorAdded, settleFactors, type FactorSessionEffects } from './factors.js';
import type { PasskeyView } from './responses.js';

export const CEREMONY_TTL_MS = 2 * 60 * 1000;
export const MAX_PASSKEYS = 20;

export interface WebAuthnConfig {
  rpId: string;
  rpName: string;
  origins: readonly string[];
}

export type CeremonyPurpose = 'register' | 'sign_in' | 'second_factor' | 'step_up';

export type { PasskeyView };

interface PasskeyRow {
  id: string;
  user_id: string;
  credential_id: string;
  public_key: Buffer;
  counter: number;
  transports: string[];
  name: string;
  created_at: Date;
  last_used_at: Date | null;
}

const view = (r: PasskeyRow): PasskeyView => ({
  id: r.id,
  name: r.name,
  createdAt: r.created_at.toISOString(),
  lastUsedAt: r.last_used_at?.toISOString() ?? null,
  transports: r.transports,
});

// WebAuthn's AuthenticatorTransport values. The client's list reaches us unchecked through the
// verifier; anything else is dropped rather than stored and echoed back in later ceremonies.
const TRANSPORTS = new Set(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

function knownTransports(claimed: unknown): string[] {
  if (!Array.isArray(claimed)) return [];
  return [...new Set(claimed.filter((t): t is string => typeof t === 'string' && TRANSPORTS.has(t)))];
}

/**
 * Passkeys (WebAuthn) with @simplewebauthn/server. Every ceremony's challenge is stored hashed
 * behind a single-use, two-minute token and burned before the response is verified, so a
 * response is accepted at most once. Sign-in requires user verification (the passkey is then
 * two factors in one); the signature counter must move forward when the authenticator keeps one.
 */
export function createPasskeyService(deps: {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  webauthn: WebAuthnConfig;
  mail: MailPort;
  sessionEffects: FactorSessionEffects;
}) {
  const system = { orgId: SYSTEM_ORG_ID };
  const now = () => deps.clock.now();
  const w = deps.webauthn;

  async function storeChallenge(ctx: RequestContext, purpose: CeremonyPurpose, userId: string | null, challenge: string): Promise<string> {
    const { token, hash } = mintOpaqueToken('webauthnCeremony');
    const at = now();
    await deps.db.withTenant(system, async (tx) => {
      // Spent and expired ceremonies are purged as new ones arrive (the table never grows past
      // what two minutes of traffic leaves).
      await exec(tx, sql`delete from webauthn_challenges where expires_at < ${at.toISOString()}`);
      await exec(
        tx,
        sql`insert into webauthn_challenges (token_hash, user_id, purpose, challenge, created_at, expires_at)
            values (${hash}, ${userId}, ${purpose}, ${challenge}, ${at.toISOString()}, ${new Date(at.getTime() + CEREMONY_TTL_MS).toISOString()})`,
      );
      // An anonymous sign-in ceremony changes nothing about an account: not audited, so that a
      // flood of them does not queue on the system chain's head row.
      if (userId) await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.passkey_challenge', details: { purpose }, target: { type: 'user', id: userId } });
    });
    return token;
  }

  /** Burns the challenge (single use) and returns it with its user; token_invalid when unknown, used, expired or of another purpose. */
  async function takeChallenge(ctx: RequestContext, token: string, purpose: CeremonyPurpose): Promise<{ challenge: string; userId: string | null }> {
    const refuse = async (reason: string): Promise<never> => {
      await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, { action: 'auth.passkey_failed', result: 'failure', details: { purpose, reason } });
      throw new AppError('token_invalid');
    };
    const tokenHash = opaqueTokenHash('webauthnCeremony', token);
    if (!tokenHash) return refuse('malformed_ceremony');
    const r = await deps.db.withTenant(system, (tx) =>
      one<{ challenge: string; user_id: string | null }>(
        tx,
        sql`update webauthn_challenges set used_at = ${now().toISOString()}
            where token_hash = ${tokenHash} and purpose = ${purpose} and used_at is null and expires_at > ${now().toISOString()}
            returning challenge, user_id`,
      ),
    );
    if (!r) return refuse('unknown_used_or_expired_ceremony');
    return { challenge: r.challenge, userId: r.user_id };
  }

  async function listRows(userId: string): Promise<PasskeyRow[]> {
    return deps.db.withTenant(system, (tx) => rows<PasskeyRow>(tx, sql`select * from passkeys where user_id = ${userId} order by created_at`));
  }

  return {
    list: async (userId: string): Promise<PasskeyView[]> => (await listRows(userId)).map(view),

    async registrationOptions(ctx: RequestContext, userId: string) {
      const person = await deps.db.withTenant(system, (tx) => personOf(deps.sealer, tx, userId));
      if (!person) throw new AppError('unauthenticated');
      const user = { id: userId, email: person.email };
      const existing = await listRows(user.id);
      if (existing.length >= MAX_PASSKEYS) throw new AppError('conflict', `at most ${MAX_PASSKEYS} passkeys`);
      const options = await generateRegistrationOptions({
        rpName: w.rpName,
        rpID: w.rpId,
        userName: user.email,
        userID: new TextEncoder().encode(user.id),
        attestationType: 'none',
        excludeCredentials: existing.map((p) => ({ id: p.credential_id, transports: p.transports })),
        authenticatorSelection: { residentKey: 'required', userVerification: 'required' },
      });
      return { ceremonyToken: await storeChallenge(ctx, 'register', user.id, options.challenge), options };
    },

    async register(ctx: RequestContext, userId: string, input: { ceremonyToken: string; name: string; response: RegistrationResponseJSON }): Promise<PasskeyView> {
      const c = await takeChallenge(ctx, input.ceremonyToken, 'register');
      if (c.userId !== userId) throw new AppError('token_invalid');
      const result = await verifyRegistrationResponse({
        response: input.response,
        expectedChallenge: c.challenge,
        expectedOrigin: [...w.origins],
        expectedRPID: w.rpId,
        requireUserVerification: true,
      }).catch(() => ({ verified: false as const }));
      if (!result.verified) {
        await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
          action: 'auth.passkey_failed', result: 'failure', target: { type: 'user', id: userId }, details: { purpose: 'register', reason: 'rejected' },
        });
        throw new AppError('invalid_credentials');
      }
      const cred = result.registrationInfo.credential;
      const id = newId();
      return deps.db.withTenant(system, async (tx) => {
        // The cap and uniqueness are checked here, under the user's row lock: two ceremonies
        // opened side by side must not both pass a count taken when their options were issued.
        await exec(tx, sql`select 1 from users where id = ${userId} for update`);
        const have = await one<{ n: number }>(tx, sql`select count(*)::int as n from passkeys where user_id = ${userId}`);
        if ((have?.n ?? 0) >= MAX_PASSKEYS) throw new AppError('conflict', `at most ${MAX_PASSKEYS} passkeys`);
        const taken = await one(tx, sql`select 1 as x from passkeys where credential_id = ${cred.id}`);
        if (taken) throw new AppError('conflict', 'this passkey is already registered');
        const r = await one<PasskeyRow>(
          tx,
          sql`insert into passkeys (id, user_id, credential_id, public_key, counter, transports, name, created_at)
              values (${id}, ${userId}, ${cred.id}, ${Buffer.from(cred.publicKey)}, ${cred.counter}, ${knownTransports(cred.transports)}, ${input.name}, ${now().toISOString()})
              returning *`,
        );
        await exec(tx, sql`update users set mfa_enabled = true where id = ${userId}`);
        // As for an authenticator app (mfa.ts confirmTotp); the registering session has just
        // proven the new factor (a user-verified attestation).
        await deps.sessionEffects.factorAdded(tx, ctx, userId);
        await notifyFactorAdded(tx, deps, userId, { kind: 'passkey', name: input.name }, ctx);
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.passkey_added', target: { type: 'passkey', id }, details: { name: input.name } });
        return view(r as PasskeyRow);
      });
    },

    async rename(ctx: RequestContext, userId: string, id: string, name: string): Promise<PasskeyView> {
      return deps.db.withTenant(system, async (tx) => {
        const r = await one<PasskeyRow>(tx, sql`update passkeys set name = ${name} where id = ${id} and user_id = ${userId} returning *`);
        if (!r) throw new AppError('not_found');
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.passkey_renamed', target: { type: 'passkey', id }, details: { name } });
        return view(r);
      });
    },

    /** Removes a passkey; MFA stays on while another factor (passkey or confirmed TOTP) remains. */
    async remove(ctx: RequestContext, userId: string, id: string): Promise<void> {
      await deps.db.withTenant(system, async (tx) => {
        const n = await exec(tx, sql`delete from passkeys where id = ${id} and user_id = ${userId}`);
        if (n !== 1) throw new AppError('not_found');
        await settleFactors(tx, userId, deps.sessionEffects);
        await deps.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.passkey_removed', target: { type: 'passkey', id } });
      });
    },

    /** Options for an assertion: discoverable (no user yet) for sign-in, else the user's passkeys only. */
    async assertionOptions(ctx: RequestContext, purpose: Exclude<CeremonyPurpose, 'register'>, userId: string | null) {
      const allow = userId ? (await listRows(userId)).map((p) => ({ id: p.credential_id, transports: p.transports })) : undefined;
      if (userId && allow?.length === 0) throw new AppError('conflict', 'no passkey is registered');
      const options = await generateAuthenticationOptions({ rpID: w.rpId, userVerification: 'required', ...(allow ? { allowCredentials: allow } : {}) });
      return { ceremonyToken: await storeChallenge(ctx, purpose, userId, options.challenge), options };
    },

    /**
     * Verifies an assertion; returns the user it proves. `expectedUser` (second factor, step-up)
     * must own the passkey. The counter moves by a conditional update: of two assertions
     * replaying one counter value, one wins.
     */
    async verifyAssertion(
      ctx: RequestContext,
      purpose: Exclude<CeremonyPurpose, 'register'>,
      ceremonyToken: string,
      response: AuthenticationResponseJSON,
      expectedUser: string | null,
    ): Promise<{ userId: string; passkeyId: string }> {
      const c = await takeChallenge(ctx, ceremonyToken, purpose);
      const fail = async (reason: string, userId?: string): Promise<never> => {
        await deps.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
          action: 'auth.passkey_failed', result: 'failure', details: { purpose, reason },
          ...(userId ? { target: { type: 'user', id: userId } } : {}), actor: { type: 'anonymous', id: null },
        });
        throw new AppError('invalid_credentials');
      };
      const row = await deps.db.withTenant(system, (tx) => one<PasskeyRow>(tx, sql`select * from passkeys where credential_id = ${response.id}`));
      if (!row) return fail('unknown_passkey');
      if ((c.userId && c.userId !== row.user_id) || (expectedUser && expectedUser !== row.user_id)) return fail('other_user', row.user_id);
      const result = await verifyAuthenticationResponse({
        response,
        expectedChallenge: c.challenge,
        expectedOrigin: [...w.origins],
        expectedRPID: w.rpId,
        credential: { id: row.credential_id, publicKey: new Uint8Array(row.public_key), counter: Number(row.counter), transports: row.transports },
        requireUserVerification: true,
      }).catch(() => null);
      if (!result?.verified) return fail(result ? 'bad_signature' : 'rejected', row.user_id);
      const moved = await deps.db.withTenant(system, (tx) =>
        exec(
          tx,
          sql`update passkeys set counter = ${result.authenticationInfo.newCounter}, last_used_at = ${now().toISOString()}
              where id = ${row.id} and counter = ${row.counter}`,
        ),
      );
      if (moved !== 1) return fail('counter_race', row.user_id);
      return { userId: row.user_id, passkeyId: row.id };
    },
  };
}

export type PasskeyService = ReturnType<typeof createPasskeyService>;
