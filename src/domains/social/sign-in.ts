import { sql } from 'kysely';
import type { SocialProvider } from '../../config/index.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { one, type Database, type Tx } from '../../db/database.js';
import type { Sealer } from '../keys/sealer.js';
import type { AuditWriter } from '../audit/index.js';
import { CallbackFailed, DiscoveryFailed, FLOW_TTL_SECONDS, safeReturnTo, type EgressFetch, type FlowSealer, type SocialFlowState, type SsoSignIn } from '../sso/index.js';
import { linkSocialToSession, socialAccountOf, type Refusal } from './accounts.js';
import { configuredProviders, type ConfiguredProvider } from './providers.js';

export interface SocialSignInDeps {
  db: Database;
  clock: Clock;
  audit: AuditWriter;
  /** Seals accounts' and identities' addresses (identity/people.ts). */
  sealer: Sealer;
  egress: EgressFetch;
  /** The SSO domain's sealer: the same browser-bound flow cookie. */
  flows: FlowSealer;
  /** The SSO domain's handover: the one-minute code that takes a pending second step to the page. */
  handover: Pick<SsoSignIn, 'mintHandover'>;
  providers: readonly SocialProvider[];
  signUp: boolean;
  publicOrigin: string;
  allowInsecureIssuers: boolean;
  /**
   * SSO enforcement (sso/enforcement.ts): sso_required for an address in a verified domain of an
   * org that enforces SSO. Asked before an account is created or a second step handed over; the
   * sign-in service's `finish` asks again when the session is issued.
   */
  ssoGate: { assertLocalSignInIn(tx: Tx, email: string): Promise<void> };
}

/** Where `start` sends the browser, and the sealed flow for its cookie. */
export interface SocialStart {
  location: string;
  flow: string;
}

/** A proven social sign-in, ready for the sign-in service (or for the account's own second factor). */
export interface SocialOutcome {
  userId: string;
  sessionEpoch: number;
  secondFactorNeeded: boolean;
  provider: string;
  returnTo: string;
}

export interface SocialLinkDone {
  linked: true;
  returnTo: string;
}

export const socialCallbackPath = (provider: string): string => `/api/auth/social/${provider}/callback`;

/**
 * Sign-in through the providers the deployment configured (Google, GitHub, generic OIDC): PKCE,
 * state and (OIDC) nonce in the SSO domain's sealed browser-bound flow cookie; the identity is
 * found by (provider, issuer, subject), linked once by a sign-in that proved both sides. A first
 * factor only: the routes end in the shared sign-in service (method `social`), which is also
 * where SSO enforcement refuses it for users whose org requires SSO; an account with a second
 * factor gets the SSO handover to its second step instead of a session.
 */
export function createSocialSignIn(d: SocialSignInDeps) {
  const providers = configuredProviders(d.providers, d.egress, d.allowInsecureIssuers, d.clock);
  const redirectUri = (provider: string) => new URL(socialCallbackPath(provider), d.publicOrigin).href;

  function providerOf(id: string): ConfiguredProvider {
    const p = providers.get(id);
    if (!p) throw new AppError('not_found', 'no such social sign-in provider is configured');
    return p;
  }

  /** Audited in the system chain (no org is involved), then answered as the refusal's problem. */
  async function refuse(ctx: RequestContext, provider: string, refusal: Refusal, userId?: string): Promise<never> {
    await d.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
      action: 'auth.social_failed', result: 'failure', actor: userId ? { type: 'user', id: userId } : { type: 'anonymous', id: null },
      ...(userId ? { target: { type: 'user', id: userId } } : {}),
      details: { provider, reason: refusal.refused },
    });
    throw new AppError(refusal.code, refusal.refused);
  }

  async function begin(ctx: RequestContext, p: ConfiguredProvider, what: Pick<SocialFlowState, 'purpose' | 'sessionId' | 'returnTo'>): Promise<SocialStart> {
    let req: Awaited<ReturnType<ConfiguredProvider['flow']['begin']>>;
    try {
      req = await p.flow.begin(redirectUri(p.id));
    } catch (err) {
      if (!(err instanceof DiscoveryFailed)) throw err;
      return refuse(ctx, p.id, { code: 'sso_failed', refused: `the provider\u2019s discovery document could not be read: ${err.reason}` });
    }
    const flow: SocialFlowState = {
      kind: 'social', v: 1, provider: p.id, state: req.state, verifier: req.verifier, ...(req.nonce ? { nonce: req.nonce } : {}),
      expiresAt: d.clock.now().getTime() + FLOW_TTL_SECONDS * 1000, ...what,
    };
    return { location: req.url, flow: d.flows.sealSocial(flow) };
  }

  return {
    /** The enabled providers, for a console's sign-in buttons. */
    list: (): { id: string; name: string; protocol: 'oidc' | 'oauth2' }[] =>
      [...providers.values()].map((p) => ({ id: p.id, name: p.name, protocol: p.protocol === 'github' ? 'oauth2' : 'oidc' })),

    /** Where the browser goes to sign in with `provider`, and the flow sealed for its cookie. */
    async start(ctx: RequestContext, provider: string, returnTo: string | undefined): Promise<SocialStart> {
      return begin(ctx, providerOf(provider), { purpose: 'sign_in', returnTo: safeReturnTo(returnTo) });
    },

    /** A signed-in user links their identity at `provider` to their account (the route asks a fresh proof). */
    async startLink(ctx: RequestContext, provider: string, returnTo: string | undefined): Promise<SocialStart> {
      const user = userActorOf(ctx);
      const p = providerOf(provider);
      const started = await begin(ctx, p, { purpose: 'link', sessionId: user.session.id, returnTo: safeReturnTo(returnTo) });
      await d.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
        action: 'auth.social_link_started', target: { type: 'user', id: user.userId }, details: { provider: p.id },
      });
      return started;
    },

    /**
     * The provider sent the browser back to `provider`'s callback. `flowCookie` is the sealed flow
     * `start` set (the caller clears it: each flow is tried once). Refusals are audited.
     */
    async callback(ctx: RequestContext, provider: string, query: string, flowCookie: string | undefined): Promise<SocialOutcome | SocialLinkDone> {
      const p = providerOf(provider);
      const flow = d.flows.openSocial(flowCookie, d.clock.now().getTime());
      // Not audited (as an SSO callback without its flow): anyone can send such a request, and
      // nothing about an account is known yet.
      if (!flow || flow.provider !== p.id) {
        throw new AppError('sso_failed', 'this browser has no sign-in with this provider in progress (it expired, or it was started elsewhere)');
      }
      const callbackUrl = new URL(`${redirectUri(p.id)}${query ? `?${query}` : ''}`);
      let identity;
      try {
        identity = await p.flow.redeem(callbackUrl, flow);
      } catch (err) {
        if (err instanceof CallbackFailed || err instanceof DiscoveryFailed) return refuse(ctx, p.id, { code: 'sso_failed', refused: err.reason });
        throw err;
      }
      const now = d.clock.now().toISOString();
      const ref = { id: p.id, name: p.name };
      if (flow.purpose === 'link') {
        const sessionId = flow.sessionId;
        if (!sessionId) return refuse(ctx, p.id, { code: 'sso_failed', refused: 'this link flow names no session' });
        const linked = await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => linkSocialToSession(tx, ctx, d, ref, identity, sessionId, now));
        if ('refused' in linked) return refuse(ctx, p.id, linked);
        return { linked: true, returnTo: flow.returnTo };
      }
      const found = await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
        const account = await socialAccountOf(tx, ctx, d, ref, identity, d.signUp, now, (t, email) => d.ssoGate.assertLocalSignInIn(t, email));
        if ('refused' in account) return account;
        const u = await one<{ session_epoch: number; mfa_enabled: boolean }>(tx, sql`select session_epoch, mfa_enabled from users where id = ${account.userId}`);
        return { userId: account.userId, epoch: u?.session_epoch ?? 0, mfaEnabled: u?.mfa_enabled ?? false };
      });
      if ('refused' in found) return refuse(ctx, p.id, found);
      // SSO enforcement: asked above (socialAccountOf) before an account is created or a second
      // step handed over; the session is born in the sign-in service's `finish` (method `social`,
      // or the second factor's after the handover), whose gate refuses every non-SSO method for a
      // user whose org enforces SSO: nothing here opens a session around it.
      return { userId: found.userId, sessionEpoch: found.epoch, secondFactorNeeded: found.mfaEnabled, provider: p.id, returnTo: flow.returnTo };
    },

    /** The single-use, one-minute code for the page that asks the account's second factor (the SSO handover). */
    mintHandover: (outcome: SocialOutcome): Promise<string> => d.handover.mintHandover({ userId: outcome.userId, sessionEpoch: outcome.sessionEpoch }),
  };
}

export type SocialSignIn = ReturnType<typeof createSocialSignIn>;
