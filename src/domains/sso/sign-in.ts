import { sql } from 'kysely';
import type * as client from 'openid-client';
import { mintOpaqueToken, newId, opaqueTokenHash } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { emailDomain } from '../../kernel/domain-name.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { ALWAYS_RESTRICTED_ROLES } from '../../kernel/permissions.js';
import { exec, one, writeUnlessTaken, type Database, type Tx } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import { OIDC_CALLBACK_PATH, type ConnectionService, type SignInConnection } from './connections.js';
import type { DomainService } from './domains.js';
import { FLOW_TTL_SECONDS, safeReturnTo, type FlowSealer, type FlowState } from './flow-state.js';
import { applyGroupRoles, roleFor } from './role-mapping.js';
import { authorizationRequest, CallbackFailed, configurationFor, discover, DiscoveryFailed, redeemCode, type EgressFetch, type OidcIdentity } from './oidc.js';

export interface SsoSignInDeps {
  db: Database;
  clock: Clock;
  audit: AuditWriter;
  connections: ConnectionService;
  domains: DomainService;
  egress: EgressFetch;
  flows: FlowSealer;
  publicOrigin: string;
  allowInsecureIssuers: boolean;
  /** A member's role or projects changed (group mapping): their sessions pick it up at once. */
  onPrivilegeChange(tx: Tx, userId: string): Promise<void>;
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

/**
 * What any SSO sign-in proved about the user, whatever the protocol: OIDC (iss, sub and the ID
 * token's claims) or SAML (the IdP entity id, the NameID and the assertion's attributes).
 */
export type SsoIdentity = OidcIdentity;

/** The part of a connection the shared completion reads: which org and connection, and its policy. */
export type CompletingConnection = Pick<SignInConnection, 'orgId' | 'id' | 'policy'>;

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

  /** The connection's client configuration; its discovery document is read once per version and TTL. */
  async function configOf(c: SignInConnection): Promise<client.Configuration> {
    const settings = { issuer: c.settings.issuer, clientId: c.settings.clientId, clientSecret: c.clientSecret };
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
    return configurationFor(await hit.metadata, settings, d.egress, d.clock.now());
  }

  async function refuse(ctx: RequestContext, orgId: string, connectionId: string, reason: string): Promise<never> {
    await d.audit.appendStandalone(orgId, ctx, {
      action: 'auth.sso_failed', target: { type: 'sso_connection', id: connectionId }, details: { reason },
    });
    throw new AppError('sso_failed', reason);
  }

  /**
   * The account this IdP identity reaches, linking or creating it where the org's verified domain
   * vouches for the address. Runs bound to the connection's org.
   */
  async function accountOf(tx: Tx, ctx: RequestContext, c: CompletingConnection, id: SsoIdentity): Promise<{ userId: string } | { refused: string }> {
    const now = d.clock.now().toISOString();
    const linked = await one<{ user_id: string }>(
      tx,
      sql`update sso_identities set last_sign_in_at = ${now}, email = ${id.email ?? ''}
          where org_id = ${c.orgId} and connection_id = ${c.id} and issuer = ${id.issuer} and subject = ${id.subject} returning user_id`,
    );
    if (linked) return { userId: linked.user_id };
    // First sign-in of this identity: only an address the IdP verified, in a domain this org has
    // proven in DNS, may reach or create an account (the IdP of another org, or one asserting an
    // address outside the org's domains, reaches nobody).
    if (!id.email || !id.emailVerified) return { refused: 'the identity provider did not assert a verified email address for an identity not linked yet' };
    const domain = emailDomain(id.email);
    const owner = domain ? await one<{ org_id: string }>(tx, sql`select org_id from verified_domains where domain = ${domain}`) : undefined;
    if (owner?.org_id !== c.orgId) return { refused: 'the email address is not in a domain this organization has verified' };
    const existing = await one<{ id: string; email_verified_at: Date | null }>(tx, sql`select id, email_verified_at from users where lower(email) = lower(${id.email})`);
    let userId: string;
    if (existing) {
      // An unverified account may have been registered by someone else with this address
      // (pre-hijacking): it is not linked until its holder proves the mailbox.
      if (!existing.email_verified_at) return { refused: 'the account with this email address has not verified it yet' };
      userId = existing.id;
    } else {
      if (!c.policy.jitRole && !roleFor(c.policy.groupRoles, id.groups)) return { refused: 'no account has this email address, and this connection does not create accounts for it' };
      userId = newId();
      const created = await writeUnlessTaken(
        tx,
        sql`insert into users (id, email, name, email_verified_at) values (${userId}, ${id.email}, ${displayName(id.name)}, ${now})`,
      );
      // Created by a concurrent first sign-in: that one links it.
      if (!created) return { refused: 'the account is being created by another sign-in; try again' };
      await d.audit.append(tx, c.orgId, ctx, {
        action: 'sso.member_provisioned', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
        details: { connectionId: c.id, created: 'account' },
      });
    }
    const inserted = await writeUnlessTaken(
      tx,
      sql`insert into sso_identities (org_id, connection_id, issuer, subject, user_id, email, linked_at, last_sign_in_at)
          values (${c.orgId}, ${c.id}, ${id.issuer}, ${id.subject}, ${userId}, ${id.email}, ${now}, ${now})`,
    );
    // The same identity linked concurrently, or this account linked to another identity at this connection.
    if (!inserted) return { refused: 'the account is linked to another identity at this identity provider' };
    await d.audit.append(tx, c.orgId, ctx, {
      action: 'sso.identity_linked', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
      details: { connectionId: c.id, issuer: id.issuer, via: 'verified_domain' },
    });
    return { userId };
  }

  /** Just-in-time membership: members the connection creates get its role (never an existing member's change). */
  async function provisionMembership(tx: Tx, ctx: RequestContext, c: CompletingConnection, userId: string): Promise<void> {
    const role = c.policy.jitRole;
    if (!role) return;
    const restricted = ALWAYS_RESTRICTED_ROLES.includes(role);
    const added = await exec(
      tx,
      sql`insert into memberships (org_id, user_id, role, restricted) values (${c.orgId}, ${userId}, ${role}, ${restricted}) on conflict do nothing`,
    );
    if (added === 1) {
      await d.audit.append(tx, c.orgId, ctx, {
        action: 'sso.member_provisioned', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
        details: { connectionId: c.id, created: 'membership', role },
      });
    }
  }

  /**
   * The part of every SSO sign-in after the protocol: the account the identity reaches (linked,
   * or linked and created through the org's verified domain), the group mapping or JIT
   * membership, and what the session needs. OIDC and SAML both end here; refusals are audited.
   */
  async function complete(ctx: RequestContext, c: CompletingConnection, identity: SsoIdentity, returnTo: string): Promise<SsoOutcome> {
    // Every project of the org is in view: a group mapping assigns projects.
    const found = await d.db.withTenant({ orgId: c.orgId, projectIds: null }, async (tx) => {
      const account = await accountOf(tx, ctx, c, identity);
      if ('refused' in account) return account;
      if (c.policy.groupRoles.length > 0) {
        const target = { orgId: c.orgId, connectionId: c.id, rules: c.policy.groupRoles, fallback: c.policy.jitRole };
        const member = await applyGroupRoles(tx, ctx, d.audit, d.onPrivilegeChange, target, account.userId, identity.groups);
        // Returned, not thrown: the removal of a member whose groups no longer reach the org stays.
        if (!member) return { refused: 'none of the identity\u2019s groups gives access to this organization' };
      } else {
        await provisionMembership(tx, ctx, c, account.userId);
      }
      const u = await one<{ session_epoch: number; mfa_enabled: boolean }>(tx, sql`select session_epoch, mfa_enabled from users where id = ${account.userId}`);
      return { userId: account.userId, epoch: u?.session_epoch ?? 0, mfaEnabled: u?.mfa_enabled ?? false };
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
      const req = await authorizationRequest(config, { redirectUri, scopes: c.settings.scopes, loginHint: input.email });
      const flow: FlowState = {
        v: 1, orgId: c.orgId, connectionId: c.id, state: req.state, nonce: req.nonce, verifier: req.verifier,
        expiresAt: d.clock.now().getTime() + FLOW_TTL_SECONDS * 1000, purpose: 'sign_in', returnTo: safeReturnTo(input.returnTo),
      };
      return { location: req.url, flow: d.flows.seal(flow) };
    },

    /**
     * The IdP sent the browser back. `flowCookie` is the sealed state `start` set (the caller
     * clears it: each flow is tried once). Refusals are audited in the org's chain.
     */
    async callback(ctx: RequestContext, query: string, flowCookie: string | undefined): Promise<SsoOutcome> {
      const flow = d.flows.open(flowCookie, d.clock.now().getTime());
      if (!flow) throw new AppError('sso_failed', 'this browser has no single sign-on in progress (it expired, or it was started elsewhere)');
      const c = await d.connections.forSignIn(flow.orgId, flow.connectionId);
      if (!c) return refuse(ctx, flow.orgId, flow.connectionId, 'the connection was disabled or deleted during the sign-in');
      let identity: OidcIdentity;
      try {
        const url = new URL(`${redirectUri}${query ? `?${query}` : ''}`);
        identity = await redeemCode(await configOf(c), url, flow);
      } catch (err) {
        if (err instanceof CallbackFailed || err instanceof DiscoveryFailed) return refuse(ctx, c.orgId, c.id, err.reason);
        throw err;
      }
      return complete(ctx, c, identity, flow.returnTo);
    },

    /** A single-use, 60-second code for the page that asks the second factor after the IdP. */
    async mintHandover(outcome: SsoOutcome): Promise<string> {
      const { token, hash } = mintOpaqueToken('ssoHandover');
      const now = d.clock.now();
      await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
        exec(
          tx,
          sql`insert into sso_handovers (token_hash, user_id, session_epoch, sso_org_id, sso_connection_id, expires_at)
              values (${hash}, ${outcome.userId}, ${outcome.sessionEpoch}, ${outcome.sso.orgId}, ${outcome.sso.connectionId},
                      ${new Date(now.getTime() + HANDOVER_TTL_MS).toISOString()})`,
        ),
      );
      return token;
    },

    /** Spends a handover code: the pending sign-in it stands for, or token_invalid. */
    async redeemHandover(code: string): Promise<{ userId: string; sessionEpoch: number; sso: { orgId: string; connectionId: string } }> {
      const hash = opaqueTokenHash('ssoHandover', code);
      if (!hash) throw new AppError('token_invalid');
      const now = d.clock.now().toISOString();
      const r = await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
        one<{ user_id: string; session_epoch: number; sso_org_id: string; sso_connection_id: string }>(
          tx,
          sql`update sso_handovers set used_at = ${now} where token_hash = ${hash} and used_at is null and expires_at > ${now}
              returning user_id, session_epoch, sso_org_id, sso_connection_id`,
        ),
      );
      if (!r) throw new AppError('token_invalid');
      return { userId: r.user_id, sessionEpoch: r.session_epoch, sso: { orgId: r.sso_org_id, connectionId: r.sso_connection_id } };
    },
  };
}

export type SsoSignIn = ReturnType<typeof createSsoSignIn>;

/** The IdP's display name, as plain text: no control or direction-changing characters, bounded. */
function displayName(name: string | null): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
  return (name ?? '').replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, '').trim().slice(0, 100);
}
