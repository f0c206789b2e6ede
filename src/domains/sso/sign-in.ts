import { sql } from 'kysely';
import type * as client from 'openid-client';
import { mintOpaqueToken, opaqueTokenHash } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { exec, one, type Database, type Tx } from '../../db/database.js';
import { requireOrg } from '../../db/binding.js';
import type { Sealer } from '../keys/sealer.js';
import type { AuditWriter } from '../audit/index.js';
import type { SsoGate } from '../sessions/index.js';
import { accountOf, linkToSession, provisionMembership } from './accounts.js';
import type { ConnectionTests } from './connection-tests.js';
import { OIDC_CALLBACK_PATH, type ConnectionService, type SignInConnection } from './connections.js';
import type { DomainService } from './domains.js';
import { FLOW_TTL_SECONDS, safeReturnTo, type FlowSealer, type FlowState } from './flow-state.js';
import { applyGroupRoles } from './role-mapping.js';
import {
  authorizationRequest, CallbackFailed, configurationFor, discover, DiscoveryFailed, redeemCode, redeemMultiTenantCode, TENANT_PLACEHOLDER,
  type EgressFetch, type OidcClientSettings, type OidcIdentity,
} from './oidc.js';

export interface SsoSignInDeps {
  db: Database;
  clock: Clock;
  audit: AuditWriter;
  /** Seals accounts' and identities' addresses (identity/people.ts). */
  sealer: Sealer;
  connections: ConnectionService;
  domains: DomainService;
  egress: EgressFetch;
  flows: FlowSealer;
  tests: ConnectionTests;
  publicOrigin: string;
  allowInsecureIssuers: boolean;
  /** A member's role or projects changed (group mapping): their sessions pick it up at once. */
  onPrivilegeChange(tx: Tx, userId: string): Promise<void>;
  /** SSO enforcement: an account another org's enforcement covers is refused before anything is linked or provisioned. */
  gate: SsoGate;
}

/** Where `start` sends the browser, and the sealed flow state for its cookie. */
export interface SsoStart {
  location: string;
  flow: string;
}

/** A proven SSO sign-in, ready for the sign-in service (or for the account's own second factor). */
export interface SsoOutcome {
  userId: string;
  sessionEpoch: number;
  /** The account has a second factor and the connection does not trust the IdP's MFA. */
  secondFactorNeeded: boolean;
  sso: { orgId: string; connectionId: string; idpMfa: boolean };
  returnTo: string;
}

/** A signed-in user's link came back: the identity is linked; the session goes on. */
export interface SsoLinkDone {
  linked: true;
  returnTo: string;
}

/** An admin's test run came back: nobody is signed in; the page shows the run. */
export interface SsoTestDone {
  testId: string;
  returnTo: string;
}

/**
 * What any SSO sign-in proved about the user, whatever the protocol: OIDC (iss, sub and the ID
 * token's claims) or SAML (the IdP entity id, the NameID and the assertion's attributes).
 */
export type SsoIdentity = OidcIdentity;

/** The part of a connection the shared completion reads: which org and connection, and its policy. */
export type CompletingConnection = Pick<SignInConnection, 'orgId' | 'id' | 'policy'>;

/** A test run's second answer (a replayed response or callback): refused, and audited as a failed SSO. */
export const TEST_RUN_ENDED = 'this test run has already ended (it was answered, or it expired)';

/** One minute: the page the browser lands on redeems it at once. */
const HANDOVER_TTL_MS = 60_000;
// Discovery documents are read once per connection version for this long (a change, such as a
// new secret, is a new version); the keys are read at every sign-in (configurationFor).
const CONFIG_TTL_MS = 10 * 60_000;

/**
 * SP-initiated OIDC sign-in: `start` routes an email address (by verified domain) or an org's
 * connection to its IdP with PKCE, state and nonce sealed in the browser's flow cookie;
 * `callback` checks all of them, validates the ID token and finds the account by its IdP
 * identity — linked once, by a sign-in that proved both sides, never by an email address alone.
 */
export function createSsoSignIn(d: SsoSignInDeps) {
  const redirectUri = new URL(OIDC_CALLBACK_PATH, d.publicOrigin).href;
  const discovered = new Map<string, { at: number; metadata: Promise<client.ServerMetadata> }>();

  /** The connection's discovered metadata, read once per version and TTL, and its client settings. */
  async function metadataOf(c: SignInConnection): Promise<{ metadata: client.ServerMetadata; settings: OidcClientSettings }> {
    const settings = { issuer: c.settings.issuer, clientId: c.settings.clientId, clientSecret: c.clientSecret, allowedTenants: c.settings.allowedTenants };
    const key = `${c.id}:${c.updatedAt.getTime()}`;
    let hit = discovered.get(key);
    if (!hit || d.clock.now().getTime() - hit.at >= CONFIG_TTL_MS) {
      const metadata = discover(settings, d.egress, d.allowInsecureIssuers).then((config) => ({ ...config.serverMetadata() }));
      // A failure is not kept: the next sign-in asks again.
      metadata.catch(() => discovered.delete(key));
      if (discovered.size > 500) discovered.clear();
      hit = { at: d.clock.now().getTime(), metadata };
      discovered.set(key, hit);
    }
    return { metadata: await hit.metadata, settings };
  }

  /** The connection's client configuration (see configurationFor: a new one per flow). */
  async function configOf(c: SignInConnection): Promise<client.Configuration> {
    const { metadata, settings } = await metadataOf(c);
    return configurationFor(metadata, settings, d.egress, d.clock.now());
  }

  /** Redeems the callback's code for the identity it proves; a multi-tenant connection expects its tenant's issuer. */
  async function redeem(c: SignInConnection, callbackUrl: URL, flow: FlowState): Promise<OidcIdentity> {
    const { metadata, settings } = await metadataOf(c);
    const now = d.clock.now();
    const allowed = c.settings.allowedTenants ?? [];
    if (allowed.length === 0) return redeemCode(configurationFor(metadata, settings, d.egress, now), callbackUrl, flow);
    const configFor = (issuer: string, egress: EgressFetch) => {
      // The template cannot be compared with an `iss` response parameter; the tenant's issuer is.
      const { authorization_response_iss_parameter_supported: issParameter, ...rest } = metadata;
      const m: client.ServerMetadata = issuer.includes(TENANT_PLACEHOLDER) ? { ...rest, issuer } : { ...rest, issuer, authorization_response_iss_parameter_supported: issParameter };
      return configurationFor(m, settings, egress, now);
    };
    return redeemMultiTenantCode(configFor, metadata.issuer, allowed, d.egress, callbackUrl, flow);
  }

  async function refuse(ctx: RequestContext, orgId: string, connectionId: string, reason: string): Promise<never> {
    await d.audit.appendStandalone(orgId, ctx, {
      action: 'auth.sso_failed', result: 'failure', target: { type: 'sso_connection', id: connectionId }, details: { reason },
    });
    throw new AppError('sso_failed', reason);
  }

  /** The browser's way to the IdP, and the flow sealed for its cookie. */
  async function beginFlow(
    config: client.Configuration, c: SignInConnection, what: Pick<FlowState, 'purpose' | 'returnTo' | 'testId' | 'sessionId'>, loginHint?: string,
  ): Promise<SsoStart> {
    const req = await authorizationRequest(config, { redirectUri, scopes: c.settings.scopes, loginHint });
    const flow: FlowState = {
      v: 1, orgId: c.orgId, connectionId: c.id, state: req.state, nonce: req.nonce, verifier: req.verifier,
      expiresAt: d.clock.now().getTime() + FLOW_TTL_SECONDS * 1000, ...what,
    };
    return { location: req.url, flow: d.flows.seal(flow) };
  }

  /** The IdP's answer to a test run: recorded for the admin, whatever it is (once: a second answer is a replay, refused). */
  async function finishTest(ctx: RequestContext, flow: FlowState & { testId: string }, callbackUrl: URL): Promise<SsoTestDone> {
    const c = await d.connections.forSignIn(flow.orgId, flow.connectionId, true);
    let recorded: boolean;
    if (!c) {
      recorded = await d.tests.record(ctx, flow, { reason: 'the connection was deleted during the test' });
    } else {
      try {
        const identity = await redeem(c, callbackUrl, flow);
        recorded = await d.tests.record(ctx, flow, { c, identity });
      } catch (err) {
        if (!(err instanceof CallbackFailed || err instanceof DiscoveryFailed)) throw err;
        recorded = await d.tests.record(ctx, flow, { reason: err.reason });
      }
    }
    if (!recorded) return refuse(ctx, flow.orgId, flow.connectionId, TEST_RUN_ENDED);
    return { testId: flow.testId, returnTo: flow.returnTo };
  }

  /** The connection's configuration for an admin's or member's flow: a discovery failure is theirs to fix (4xx). */
  async function adminConfigOf(c: SignInConnection): Promise<client.Configuration> {
    try {
      return await configOf(c);
    } catch (err) {
      if (!(err instanceof DiscoveryFailed)) throw err;
      throw new AppError('validation_failed', `the identity provider\u2019s discovery document could not be read: ${err.reason}`);
    }
  }

  /** The enabled connection a flow names and the identity its callback proves, or an audited refusal. */
  async function proven(ctx: RequestContext, flow: FlowState, callbackUrl: URL, what: string): Promise<{ c: SignInConnection; identity: OidcIdentity }> {
    const c = await d.connections.forSignIn(flow.orgId, flow.connectionId);
    if (!c) return refuse(ctx, flow.orgId, flow.connectionId, `the connection was disabled or deleted during the ${what}`);
    try {
      return { c, identity: await redeem(c, callbackUrl, flow) };
    } catch (err) {
      if (err instanceof CallbackFailed || err instanceof DiscoveryFailed) return refuse(ctx, c.orgId, c.id, err.reason);
      throw err;
    }
  }

  /** The IdP's answer to a link started from a session. */
  async function finishLink(ctx: RequestContext, flow: FlowState & { sessionId: string }, callbackUrl: URL): Promise<SsoLinkDone> {
    const { c, identity } = await proven(ctx, flow, callbackUrl, 'link');
    const linked = await d.db.withTenant({ orgId: c.orgId, projectIds: null }, (tx) => linkToSession(tx, ctx, d, c, identity, flow.sessionId, d.clock.now().toISOString()));
    if ('refused' in linked) return refuse(ctx, c.orgId, c.id, linked.refused);
    return { linked: true, returnTo: flow.returnTo };
  }

  /**
   * The part of every SSO sign-in after the protocol: the account the identity reaches (linked,
   * or linked and created through the org's verified domain), the group mapping or JIT
   * membership, and what the session needs. OIDC and SAML both end here; refusals are audited.
   */
  async function complete(ctx: RequestContext, c: CompletingConnection, identity: SsoIdentity, returnTo: string): Promise<SsoOutcome> {
    // Every project of the org is in view: a group mapping assigns projects.
    let enforced: { orgId: string; error: AppError } | null = null;
    const found = await d.db.withTenant({ orgId: c.orgId, projectIds: null }, async (tx) => {
      const account = await accountOf(tx, ctx, d, c, identity, d.clock.now().toISOString());
      if ('refused' in account) return account;
      // Another org enforces SSO on this account: thrown, so that the link or account just written
      // rolls back with everything else (the sign-in service would refuse the session anyway).
      enforced = await d.gate.refusal(tx, account.userId, { sso: { orgId: c.orgId } });
      if (enforced) throw enforced.error;
      if (c.policy.groupRoles.length > 0) {
        const target = { orgId: c.orgId, connectionId: c.id, rules: c.policy.groupRoles, fallback: c.policy.jitRole };
        const member = await applyGroupRoles(tx, ctx, d.audit, d.onPrivilegeChange, target, account.userId, identity.groups);
        // Returned, not thrown: the removal of a member whose groups no longer reach the org stays.
        if (!member) return { refused: 'none of the identity\u2019s groups gives access to this organization' };
      } else {
        await provisionMembership(tx, ctx, d.audit, c, account.userId);
      }
      const u = await one<{ session_epoch: number; mfa_enabled: boolean }>(tx, sql`select session_epoch, mfa_enabled from users where id = ${account.userId}`);
      return { userId: account.userId, epoch: u?.session_epoch ?? 0, mfaEnabled: u?.mfa_enabled ?? false };
    }).catch(async (err: unknown) => {
      const refusal = enforced as { orgId: string; error: AppError } | null;
      if (refusal && err === refusal.error) {
        await d.audit.appendStandalone(refusal.orgId, ctx, {
          action: 'auth.sso_required', result: 'failure', details: { method: 'sso', ssoOrgId: c.orgId, ssoConnectionId: c.id },
        });
      }
      throw err;
    });
    if ('refused' in found) return refuse(ctx, c.orgId, c.id, found.refused);
    return {
      userId: found.userId, sessionEpoch: found.epoch, secondFactorNeeded: found.mfaEnabled && !c.policy.trustIdpMfa,
      sso: { orgId: c.orgId, connectionId: c.id, idpMfa: c.policy.trustIdpMfa }, returnTo,
    };
  }

  return {
    redirectUri,

    /** The shared completion, for the SAML ACS (sign-in/saml.ts). */
    complete,
    /** An audited refusal (auth.sso_failed in the org's chain), thrown as sso_failed. */
    refuse,

    /** Where the browser goes for `email` (its verified domain's org) or for an org's connection. */
    async start(ctx: RequestContext, input: { email?: string | undefined; orgId?: string | undefined; connectionId?: string | undefined; returnTo?: string | undefined }): Promise<SsoStart> {
      const orgId = input.orgId ?? (input.email ? await d.domains.orgOfEmail(input.email) : null);
      const c = orgId ? await d.connections.forSignIn(orgId, input.connectionId) : null;
      if (!c) throw new AppError('not_found', input.email ? 'no single sign-on is set up for this email address' : 'no such enabled single sign-on connection');
      let config: client.Configuration;
      try {
        config = await configOf(c);
      } catch (err) {
        if (!(err instanceof DiscoveryFailed)) throw err;
        return refuse(ctx, c.orgId, c.id, `the identity provider\u2019s discovery document could not be read: ${err.reason}`);
      }
      return beginFlow(config, c, { purpose: 'sign_in', returnTo: safeReturnTo(input.returnTo) }, input.email);
    },

    /**
     * An admin's test run of one of their org's connections, enabled or not: a real sign-in at the
     * IdP whose callback records the claims and signs nobody in.
     */
    async startTest(ctx: RequestContext, connectionId: string, returnTo: string | undefined): Promise<SsoStart & { testId: string }> {
      const org = requireOrg(ctx);
      const c = await d.connections.forSignIn(org.orgId, connectionId, true);
      if (!c) throw new AppError('not_found');
      const config = await adminConfigOf(c);
      const testId = await d.tests.open(ctx, c.id);
      const started = await beginFlow(config, c, { purpose: 'test', testId, returnTo: safeReturnTo(returnTo) });
      return { ...started, testId };
    },

    /**
     * The IdP sent the browser back. `flowCookie` is the sealed state `start` set (the caller
     * clears it: each flow is tried once). Refusals are audited in the org's chain.
     */
    /**
     * A signed-in member links their identity at one of the org's enabled connections: the
     * other way to link an account whose address the IdP does not share (never by email).
     */
    async startLink(ctx: RequestContext, connectionId: string, returnTo: string | undefined): Promise<SsoStart> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      if (!user.session) throw new AppError('unauthenticated');
      const c = await d.connections.forSignIn(org.orgId, connectionId);
      if (!c) throw new AppError('not_found', 'no such enabled single sign-on connection');
      const config = await adminConfigOf(c);
      await d.audit.appendStandalone(org.orgId, ctx, { action: 'sso.identity_link_started', target: { type: 'sso_connection', id: c.id } });
      return beginFlow(config, c, { purpose: 'link', sessionId: user.session.id, returnTo: safeReturnTo(returnTo) });
    },

    async callback(ctx: RequestContext, query: string, flowCookie: string | undefined): Promise<SsoOutcome | SsoTestDone | SsoLinkDone> {
      const flow = d.flows.open(flowCookie, d.clock.now().getTime());
      if (!flow) throw new AppError('sso_failed', 'this browser has no single sign-on in progress (it expired, or it was started elsewhere)');
      const callbackUrl = new URL(`${redirectUri}${query ? `?${query}` : ''}`);
      if (flow.purpose === 'test' && flow.testId) return finishTest(ctx, { ...flow, testId: flow.testId }, callbackUrl);
      if (flow.purpose === 'link' && flow.sessionId) return finishLink(ctx, { ...flow, sessionId: flow.sessionId }, callbackUrl);
      if (flow.purpose !== 'sign_in') throw new AppError('sso_failed', 'this single sign-on flow is not a sign-in');
      const { c, identity } = await proven(ctx, flow, callbackUrl, 'sign-in');
      return complete(ctx, c, identity, flow.returnTo);
    },

    /**
     * A single-use, 60-second code for the page that asks the second factor after the IdP: an
     * org's (`sso`) or a social provider's (no `sso`; social/sign-in.ts).
     */
    async mintHandover(outcome: { userId: string; sessionEpoch: number; sso?: { orgId: string; connectionId: string } }): Promise<string> {
      const { token, hash } = mintOpaqueToken('ssoHandover');
      const now = d.clock.now();
      await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
        exec(
          tx,
          sql`insert into sso_handovers (token_hash, user_id, session_epoch, sso_org_id, sso_connection_id, expires_at)
              values (${hash}, ${outcome.userId}, ${outcome.sessionEpoch}, ${outcome.sso?.orgId ?? null}, ${outcome.sso?.connectionId ?? null},
                      ${new Date(now.getTime() + HANDOVER_TTL_MS).toISOString()})`,
        ),
      );
      return token;
    },

    /** Spends a handover code: the pending sign-in it stands for, or token_invalid. */
    async redeemHandover(code: string): Promise<{ userId: string; sessionEpoch: number; sso: { orgId: string; connectionId: string } | undefined }> {
      const hash = opaqueTokenHash('ssoHandover', code);
      if (!hash) throw new AppError('token_invalid');
      const now = d.clock.now().toISOString();
      const r = await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
        one<{ user_id: string; session_epoch: number; sso_org_id: string | null; sso_connection_id: string | null }>(
          tx,
          sql`update sso_handovers set used_at = ${now} where token_hash = ${hash} and used_at is null and expires_at > ${now}
              returning user_id, session_epoch, sso_org_id, sso_connection_id`,
        ),
      );
      if (!r) throw new AppError('token_invalid');
      const sso = r.sso_org_id && r.sso_connection_id ? { orgId: r.sso_org_id, connectionId: r.sso_connection_id } : undefined;
      return { userId: r.user_id, sessionEpoch: r.session_epoch, sso };
    },
  };
}

export type SsoSignIn = ReturnType<typeof createSsoSignIn>;
