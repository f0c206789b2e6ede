import { STEP_UP_SECONDS, userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import type { Database, Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import type { AuditWriter } from '../audit/index.js';
import type { FactorSessionEffects } from '../identity/index.js';
import type { SessionProof, SessionService } from './service.js';

/** Every way a sign-in can be proven. SSO is listed so that its work plugs in here, not beside. */
export type SignInMethod = 'password' | 'totp' | 'recovery_code' | 'passkey' | 'sso' | 'magic_link' | 'social';

/** What can freshly prove a signed-in user's identity again. */
export type StepUpMethod = Exclude<SignInMethod, 'sso' | 'magic_link' | 'social'>;

/**
 * What each method proves on the session it opens. A password is a fresh proof only because an
 * account with a second factor never gets a session from its password alone (the login answers
 * with a pending second step instead). An SSO sign-in is not a step-up: Palisade cannot tell how
 * long ago the user proved themselves at the IdP (its session may be days old), so sensitive
 * actions ask for a proof of our own; it is a second factor only where the connection trusts the
 * IdP's MFA (`sso.idpMfa`).
 */
const PROVES: Readonly<Record<SignInMethod, { secondFactor: boolean; fresh: boolean }>> = {
  password: { secondFactor: false, fresh: true },
  totp: { secondFactor: true, fresh: true },
  recovery_code: { secondFactor: true, fresh: true },
  passkey: { secondFactor: true, fresh: true },
  sso: { secondFactor: false, fresh: false },
  // Proof of the mailbox, as a first factor only (an account with a second factor still gives
  // it); not fresh: a mail can sit unread in an inbox others can reach.
  magic_link: { secondFactor: false, fresh: false },
  // A provider the deployment configured (Google, GitHub, generic OIDC): a first factor only,
  // whatever MFA the provider did (Palisade cannot see it); not fresh, like SSO (its session at
  // the provider may be days old). Not an SSO method: SSO enforcement refuses it like a password.
  social: { secondFactor: false, fresh: false },
};

export interface SignInFinish {
  userId: string;
  method: SignInMethod;
  /** The session cookie the client sent along, if any: revoked, never reused (fixation). */
  brought?: string | undefined;
  /** The session epoch the credential was checked under: a reset or revocation since then wins. */
  epoch?: number;
  /**
   * Spends what the sign-in was made of (a pending second-step token) in the session's own
   * transaction: false refuses the sign-in, so of two requests racing with one token, one wins.
   */
  consume?: (tx: Tx) => Promise<boolean>;
  /**
   * The sign-in came through an org's identity provider (alone with method `sso`, or with
   * Palisade's own second factor on top): recorded on the session. `idpMfa`: the connection
   * trusts the IdP's multi-factor sign-in, so the session counts as proven with a second factor.
   */
  sso?: { orgId: string; connectionId: string; idpMfa: boolean };
  /** Method `social`: the deployment's provider that proved it (recorded in the audit event). */
  social?: { provider: string };
  /**
   * A break-glass sign-in (password and second factor) of an owner of this org, which enforces
   * SSO: the gate lets it through that org's enforcement, its evidence is written first, and the
   * session ends within the hour.
   */
  breakGlassOrgId?: string;
}

/** How a sign-in came, as the SSO enforcement gate reads it. */
export interface SsoGateVia {
  sso?: { orgId: string } | undefined;
  breakGlassOrgId?: string | undefined;
}

/**
 * SSO enforcement as the sign-in service sees it (sso/enforcement.ts implements it): the
 * backstop every sign-in passes, whatever route it came through.
 */
export interface SsoGate {
  /** Inside the session's transaction: the org whose enforcement refuses this sign-in, and the problem to answer; null when allowed. */
  refusal(tx: Tx, userId: string, via: SsoGateVia): Promise<{ orgId: string; error: AppError } | null>;
  /** The evidence of a break-glass sign-in, committed before its session is issued (forbidden when no longer allowed). */
  recordBreakGlass(ctx: RequestContext, userId: string, orgId: string): Promise<void>;
}

export interface SignedInSession {
  sessionId: string;
  cookie: string;
  maxAgeSeconds: number;
}

export interface SignInDeps {
  db: Database;
  clock: Clock;
  audit: AuditWriter;
  sessions: SessionService;
  gate: SsoGate;
  /** The longest a break-glass session lives. */
  breakGlassSeconds: number;
}

/**
 * The one place a session is born from a proof of identity, a proof is recorded on a session, and
 * adding or removing a second factor reaches the user's sessions. Routes prove the credential
 * (identity) and set the cookie (cookie.ts `finishSignInOn`); everything between is here, so that
 * every sign-in path issues, audits and marks its session the same way.
 */
export function createSignInService(d: SignInDeps) {
  const system = { orgId: SYSTEM_ORG_ID };

  async function recordFactorAdded(tx: Tx, ctx: RequestContext, userId: string): Promise<void> {
    // From now on only a second factor is a step-up: a password proof other sessions made before
    // (inside its window) stops counting, or a password-only session could still mint recovery
    // codes, i.e. a permanent second factor.
    await d.sessions.voidPasswordStepUps(tx, userId);
    // The session that added the factor just proved it: marked in the same transaction, so MFA is
    // never on without the session that turned it on knowing it.
    if (ctx.actor.type === 'user') await d.sessions.recordStepUp(tx, ctx.actor.session.id, userId, true);
  }

  const factorEffects: FactorSessionEffects = {
    factorAdded: recordFactorAdded,
    allFactorsRemoved: (tx, userId) => d.sessions.unmarkSecondFactor(tx, userId),
  };

  return {
    ...factorEffects,

    /**
     * Ends a proven sign-in: a new session id (the cookie the client brought is revoked), marked
     * with what `method` proves, audited as `auth.login`. `consume` runs first, in the same
     * transaction.
     */
    async finish(ctx: RequestContext, input: SignInFinish): Promise<SignedInSession> {
      const proves = PROVES[input.method];
      const secondFactor = proves.secondFactor || (input.sso?.idpMfa ?? false);
      const previous = input.brought ? await d.sessions.verify(input.brought, ctx).catch(() => null) : null;
      const proof: SessionProof = { mfaVerified: secondFactor, steppedUpAt: proves.fresh ? d.clock.now() : null };
      const sso = input.sso ? { orgId: input.sso.orgId, connectionId: input.sso.connectionId } : undefined;
      const via = { sso: input.sso, breakGlassOrgId: input.breakGlassOrgId };
      if (input.breakGlassOrgId) await d.gate.recordBreakGlass(ctx, input.userId, input.breakGlassOrgId);
      const absoluteSeconds = input.breakGlassOrgId ? Math.min(d.breakGlassSeconds, d.sessions.absoluteSeconds) : d.sessions.absoluteSeconds;
      const outcome = await d.db.withTenant(system, async (tx) => {
        // First, before anything is spent or written: SSO enforcement, whatever route this came through.
        const refused = await d.gate.refusal(tx, input.userId, via);
        if (refused) return { kind: 'refused' as const, refused };
        if (input.consume && !(await input.consume(tx))) throw new AppError('token_invalid');
        if (previous) await d.sessions.revokeById(tx, previous.actor.userId, previous.actor.session.id, 'replaced_by_login');
        const s = await d.sessions.issue(tx, input.userId, ctx, {
          epoch: input.epoch, proof, firstFactorOnly: !secondFactor, method: sso ? 'sso' : input.method, ...(sso ? { sso } : {}),
          ...(input.breakGlassOrgId ? { breakGlassOrgId: input.breakGlassOrgId, absoluteSeconds } : {}),
        });
        const details = {
          ...(proves.secondFactor ? { secondFactor: input.method } : input.sso?.idpMfa ? { secondFactor: 'identity_provider' } : {}),
          ...(sso ? { ssoOrgId: sso.orgId, ssoConnectionId: sso.connectionId } : {}),
          ...(input.social ? { socialProvider: input.social.provider } : {}),
          ...(input.breakGlassOrgId ? { breakGlassOrgId: input.breakGlassOrgId } : {}),
        };
        await d.audit.append(tx, SYSTEM_ORG_ID, ctx, {
          action: 'auth.login', target: { type: 'session', id: s.id }, actor: { type: 'user', id: input.userId },
          ...(Object.keys(details).length > 0 ? { details } : {}),
        });
        return { kind: 'issued' as const, issued: s };
      });
      if (outcome.kind === 'refused') {
        await d.audit.appendStandalone(outcome.refused.orgId, ctx, {
          action: 'auth.sso_required', target: { type: 'user', id: input.userId }, actor: { type: 'user', id: input.userId }, result: 'failure',
          details: { method: input.method, ...(sso ? { ssoOrgId: sso.orgId } : {}) },
        });
        throw outcome.refused.error;
      }
      const issued = outcome.issued;
      return { sessionId: issued.id, cookie: issued.cookie, maxAgeSeconds: absoluteSeconds };
    },

    /**
     * Records a fresh proof of identity the caller has just checked on the signed-in session:
     * sensitive routes accept it for STEP_UP_SECONDS. A second factor also marks the session as
     * proven with one; a password counts only while the account has no second factor.
     */
    async stepUp(ctx: RequestContext, method: StepUpMethod): Promise<{ steppedUpUntil: string }> {
      const actor = userActorOf(ctx);
      await d.db.withTenant(system, async (tx) => {
        await d.sessions.recordStepUp(tx, actor.session.id, actor.userId, PROVES[method].secondFactor);
        await d.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.step_up', target: { type: 'session', id: actor.session.id }, details: { method } });
      });
      return { steppedUpUntil: new Date(d.clock.now().getTime() + STEP_UP_SECONDS * 1000).toISOString() };
    },
  };
}

export type SignInService = ReturnType<typeof createSignInService>;
