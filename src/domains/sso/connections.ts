import { sql } from 'kysely';
import { newId, type FieldRef } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { exec, one, rows, type Database } from '../../db/database.js';
import { keepOneWayIn } from './enforcement.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { discover, DiscoveryFailed, type EgressFetch } from './oidc.js';
import { EgressRefused } from '../webhooks/index.js';
import type { ConnectionView } from './responses.js';
import { DEFAULT_SIGN_IN_POLICY, mergePolicy, policyChangeDetails, policyOf, type PolicyChange, type SignInPolicy } from './policy.js';
import { checkGroupRoles } from './role-mapping.js';
import { checkIdpUrl, samlCertificates, samlIdpOf } from './saml-metadata.js';

/** A few IdPs per org (one per subsidiary or migration); the cap bounds storage and discovery calls. */
export const MAX_CONNECTIONS_PER_ORG = 20;

/** The one OIDC redirect URI: the browser's state cookie, not the path, names the connection. */
export const OIDC_CALLBACK_PATH = '/api/auth/sso/oidc/callback';

/** A SAML connection's SP entity id is its metadata URL; the IdP posts to its ACS URL. */
export const samlMetadataPath = (connectionId: string): string => `/api/auth/sso/saml/${connectionId}/metadata`;
export const samlAcsPath = (connectionId: string): string => `/api/auth/sso/saml/${connectionId}/acs`;

export interface OidcSettings {
  issuer: string;
  clientId: string;
  scopes: string[];
  /** Multi-tenant Entra ID: the tenants (ids) whose users may sign in; absent for a one-tenant issuer. */
  allowedTenants?: string[];
  signIn?: Partial<SignInPolicy>;
}

/** A SAML IdP as this SP trusts it. None of it is secret; the certificates are public keys. */
export interface SamlSettings {
  idpEntityId: string;
  ssoUrl: string;
  /** PEM; a response signed by any of them is accepted (an IdP's certificate rollover). */
  certificates: string[];
  /** Unsolicited responses (no AuthnRequest of ours) accepted; off unless the admin turns it on. */
  allowIdpInitiated: boolean;
  /** The Response must be signed as well as the Assertion (the default); some IdPs sign the assertion only. */
  requireSignedResponse: boolean;
  signIn?: Partial<SignInPolicy>;
}

interface ConnectionRow {
  id: string;
  kind: 'oidc' | 'saml';
  name: string;
  enabled: boolean;
  settings: OidcSettings | SamlSettings | string;
  secret_sealed: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = sql`id, kind, name, enabled, settings, secret_sealed, created_by, created_at, updated_at`;

const secretRef = (orgId: string, id: string): FieldRef => ({ scope: orgId, table: 'sso_connections', column: 'secret_sealed', row: id });

// PGlite hands jsonb back parsed, node-postgres too; a string means a driver that did not.
const rawSettingsOf = (r: ConnectionRow): OidcSettings | SamlSettings => (typeof r.settings === 'string' ? (JSON.parse(r.settings) as OidcSettings | SamlSettings) : r.settings);
const settingsOf = (r: ConnectionRow): OidcSettings => rawSettingsOf(r) as OidcSettings;
const samlSettingsOf = (r: ConnectionRow): SamlSettings => rawSettingsOf(r) as SamlSettings;

/** An enabled SAML connection, for the ACS and the SP-initiated start. */
export interface SamlSignInConnection {
  orgId: string;
  id: string;
  kind: 'saml';
  settings: SamlSettings;
  policy: SignInPolicy;
}

/** An enabled connection, for the sign-in flow only: it holds the opened client secret. */
export interface SignInConnection {
  orgId: string;
  id: string;
  kind: 'oidc' | 'saml';
  settings: OidcSettings;
  policy: SignInPolicy;
  updatedAt: Date;
  clientSecret: string;
}

export interface ConnectionDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  egress: EgressFetch;
  /** Where the IdP sends the browser back: PUBLIC_ORIGIN. */
  publicOrigin: string;
  /** Plain-http issuers (a local IdP), allowed where loopback egress is: development and tests. */
  allowInsecureIssuers: boolean;
}

export interface NewOidcConnection extends PolicyChange {
  name: string;
  issuer: string;
  clientId: string;
  clientSecret: string;
  scopes?: string[] | undefined;
  /** Multi-tenant Entra ID (`…/organizations/v2.0`): the tenant ids allowed to sign in. */
  allowedTenants?: string[] | undefined;
}

/** A SAML IdP: its metadata XML, or its entity id, SSO URL and signing certificates. */
export interface NewSamlConnection extends PolicyChange {
  name: string;
  metadataXml?: string | undefined;
  /** Where the IdP publishes its metadata: read once, now, through the SSRF-guarded egress. */
  metadataUrl?: string | undefined;
  idpEntityId?: string | undefined;
  ssoUrl?: string | undefined;
  certificates?: string[] | undefined;
  allowIdpInitiated?: boolean | undefined;
  requireSignedResponse?: boolean | undefined;
}

export interface ConnectionChange extends PolicyChange {
  /** SAML: a new certificate list (rollover: add the next one, later remove the old one). */
  certificates?: string[] | undefined;
  allowIdpInitiated?: boolean | undefined;
  requireSignedResponse?: boolean | undefined;
  name?: string | undefined;
  enabled?: boolean | undefined;
  clientSecret?: string | undefined;
  scopes?: string[] | undefined;
  /** A multi-tenant connection's new list of allowed tenants. */
  allowedTenants?: string[] | undefined;
}

/**
 * An org's SSO connections. The client secret is sealed with the org's data key and never
 * leaves; the issuer is checked by reading its discovery document (through the SSRF-guarded
 * egress) before anything is stored, so a typo or an internal address fails at once.
 */
export function createConnectionService(deps: ConnectionDeps) {
  const redirectUri = new URL(OIDC_CALLBACK_PATH, deps.publicOrigin).href;
  const view = (r: ConnectionRow): ConnectionView => {
    const s = settingsOf(r);
    const saml = samlSettingsOf(r);
    return {
      id: r.id, kind: r.kind, name: r.name, enabled: r.enabled, signIn: policyOf(s),
      oidc: r.kind === 'oidc'
        ? { issuer: s.issuer, clientId: s.clientId, scopes: s.scopes, allowedTenants: s.allowedTenants ?? null, clientSecretSet: r.secret_sealed !== null, redirectUri }
        : null,
      saml: r.kind === 'saml'
        ? {
            idpEntityId: saml.idpEntityId, ssoUrl: saml.ssoUrl, certificates: saml.certificates, allowIdpInitiated: saml.allowIdpInitiated,
            requireSignedResponse: saml.requireSignedResponse,
            spEntityId: new URL(samlMetadataPath(r.id), deps.publicOrigin).href, acsUrl: new URL(samlAcsPath(r.id), deps.publicOrigin).href,
            metadataUrl: new URL(samlMetadataPath(r.id), deps.publicOrigin).href,
          }
        : null,
      createdBy: r.created_by, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
    };
  };

  async function checkIssuer(issuer: string, clientId: string, clientSecret: string, allowedTenants: readonly string[] | undefined): Promise<void> {
    try {
      await discover({ issuer, clientId, clientSecret, allowedTenants }, deps.egress, deps.allowInsecureIssuers);
    } catch (err) {
      if (!(err instanceof DiscoveryFailed)) throw err;
      throw new AppError('validation_failed', `the issuer's discovery document could not be read: ${err.reason}`, [{ path: 'issuer', message: err.reason }]);
    }
  }

  /** The metadata document at `metadataUrl`, read through the egress guard (private addresses refused). */
  async function fetchMetadata(input: NewSamlConnection): Promise<string> {
    const refuse = (reason: string): never => {
      throw new AppError('validation_failed', `the IdP metadata could not be read: ${reason}`, [{ path: 'metadataUrl', message: reason }]);
    };
    if (input.metadataXml !== undefined || input.idpEntityId !== undefined || input.ssoUrl !== undefined || input.certificates !== undefined) {
      refuse('give the metadata URL alone');
    }
    const urlProblem = checkIdpUrl(input.metadataUrl ?? '', deps.allowInsecureIssuers);
    if (urlProblem) refuse(urlProblem);
    let res: Response;
    try {
      res = await deps.egress(input.metadataUrl ?? '', { method: 'GET', headers: { accept: 'application/samlmetadata+xml, application/xml, text/xml' } });
    } catch (err) {
      if (err instanceof EgressRefused) return refuse(err.reason);
      throw err;
    }
    if (res.status !== 200) refuse(`the server answered ${res.status}`);
    return res.text();
  }

  async function load(ctx: RequestContext, id: string): Promise<ConnectionView> {
    const org = requireOrg(ctx);
    const r = await deps.db.withTenant(bindingOf(ctx), (tx) =>
      one<ConnectionRow>(tx, sql`select ${COLUMNS} from sso_connections where org_id = ${org.orgId} and id = ${id}`),
    );
    if (!r) throw new AppError('not_found');
    return view(r);
  }

  return {
    redirectUri,

    async list(ctx: RequestContext): Promise<ConnectionView[]> {
      const org = requireOrg(ctx);
      const list = await deps.db.withTenant(bindingOf(ctx), (tx) =>
        rows<ConnectionRow>(tx, sql`select ${COLUMNS} from sso_connections where org_id = ${org.orgId} order by created_at, id`),
      );
      return list.map(view);
    },

    get: load,

    async createOidc(ctx: RequestContext, input: NewOidcConnection): Promise<ConnectionView> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      // Before the transaction: a slow IdP holds no connection.
      const allowedTenants = tenantList(input.allowedTenants);
      await checkIssuer(input.issuer, input.clientId, input.clientSecret, allowedTenants);
      const id = newId();
      const settings: OidcSettings = {
        issuer: input.issuer, clientId: input.clientId, scopes: input.scopes ?? ['openid', 'email', 'profile'], ...(allowedTenants ? { allowedTenants } : {}),
        signIn: mergePolicy(DEFAULT_SIGN_IN_POLICY, input),
      };
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        await checkGroupRoles(tx, org, settings.signIn?.groupRoles ?? []);
        const count = await one<{ n: number }>(tx, sql`select count(*)::int as n from sso_connections where org_id = ${org.orgId}`);
        if ((count?.n ?? 0) >= MAX_CONNECTIONS_PER_ORG) throw new AppError('conflict', `an organization has at most ${MAX_CONNECTIONS_PER_ORG} SSO connections`);
        const sealed = await deps.sealer.seal(tx, secretRef(org.orgId, id), input.clientSecret);
        const now = deps.clock.now().toISOString();
        const r = await one<ConnectionRow>(
          tx,
          sql`insert into sso_connections (org_id, id, kind, name, settings, secret_sealed, created_by, created_at, updated_at)
              values (${org.orgId}, ${id}, 'oidc', ${input.name}, ${JSON.stringify(settings)}::jsonb, ${sealed}, ${user.userId}, ${now}, ${now})
              returning ${COLUMNS}`,
        );
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'sso.connection_created', target: { type: 'sso_connection', id },
          details: {
            kind: 'oidc', name: input.name, issuer: settings.issuer, clientId: settings.clientId, ...(allowedTenants ? { allowedTenants } : {}),
            ...policyChangeDetails(policyOf(settings)),
          },
        });
        return view(r as ConnectionRow);
      });
    },

    /**
     * A SAML connection, from the IdP's metadata XML or its three parts typed in. Everything is
     * checked before the transaction (XML refused with a DOCTYPE, over the size cap, malformed;
     * certificates must parse); the ACS route lookup is written with the connection.
     */
    async createSaml(ctx: RequestContext, input: NewSamlConnection): Promise<ConnectionView> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      // Before the transaction: a slow IdP holds no connection.
      const idp = samlIdpOf(input.metadataUrl === undefined ? input : { ...input, metadataUrl: undefined, metadataXml: await fetchMetadata(input) }, deps.allowInsecureIssuers);
      const id = newId();
      const settings: SamlSettings = {
        idpEntityId: idp.entityId, ssoUrl: idp.ssoUrl, certificates: idp.certificates,
        allowIdpInitiated: input.allowIdpInitiated ?? false, requireSignedResponse: input.requireSignedResponse ?? true,
        signIn: mergePolicy(DEFAULT_SIGN_IN_POLICY, input),
      };
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        await checkGroupRoles(tx, org, settings.signIn?.groupRoles ?? []);
        const count = await one<{ n: number }>(tx, sql`select count(*)::int as n from sso_connections where org_id = ${org.orgId}`);
        if ((count?.n ?? 0) >= MAX_CONNECTIONS_PER_ORG) throw new AppError('conflict', `an organization has at most ${MAX_CONNECTIONS_PER_ORG} SSO connections`);
        const now = deps.clock.now().toISOString();
        const r = await one<ConnectionRow>(
          tx,
          sql`insert into sso_connections (org_id, id, kind, name, settings, secret_sealed, created_by, created_at, updated_at)
              values (${org.orgId}, ${id}, 'saml', ${input.name}, ${JSON.stringify(settings)}::jsonb, null, ${user.userId}, ${now}, ${now})
              returning ${COLUMNS}`,
        );
        await exec(tx, sql`insert into saml_acs_routes (connection_id, org_id) values (${id}, ${org.orgId})`);
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'sso.connection_created', target: { type: 'sso_connection', id },
          details: {
            kind: 'saml', name: input.name, idpEntityId: settings.idpEntityId, ssoUrl: settings.ssoUrl, certificates: settings.certificates.length,
            allowIdpInitiated: settings.allowIdpInitiated, requireSignedResponse: settings.requireSignedResponse, ...policyChangeDetails(policyOf(settings)),
          },
        });
        return view(r as ConnectionRow);
      });
    },

    async update(ctx: RequestContext, id: string, change: ConnectionChange): Promise<ConnectionView> {
      const org = requireOrg(ctx);
      const current = await load(ctx, id);
      if (current.kind === 'oidc' && current.oidc && change.clientSecret !== undefined) {
        // The issuer must still answer discovery. Discovery does not use the secret: a wrong secret
        // shows at the first sign-in (the token endpoint refuses it), not here.
        await checkIssuer(current.oidc.issuer, current.oidc.clientId, change.clientSecret, current.oidc.allowedTenants ?? undefined);
      }
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await one<ConnectionRow>(tx, sql`select ${COLUMNS} from sso_connections where org_id = ${org.orgId} and id = ${id} for update`);
        if (!r) throw new AppError('not_found');
        if (change.enabled === false && r.enabled) await keepOneWayIn(tx, org.orgId, id);
        const settings = rawSettingsOf(r);
        if (change.groupRoles) await checkGroupRoles(tx, org, change.groupRoles);
        const samlOnly = change.certificates !== undefined || change.allowIdpInitiated !== undefined || change.requireSignedResponse !== undefined;
        if (r.kind === 'oidc' && samlOnly) throw new AppError('validation_failed', 'certificates, allowIdpInitiated and requireSignedResponse are for SAML connections');
        if (r.kind === 'saml' && (change.clientSecret !== undefined || change.scopes !== undefined || change.allowedTenants !== undefined)) {
          throw new AppError('validation_failed', 'clientSecret, scopes and allowedTenants are for OIDC connections');
        }
        // The issuer's kind was checked against its discovery document at creation: a one-tenant
        // connection does not become a multi-tenant one (or back) by a list.
        if (change.allowedTenants !== undefined && !(settings as OidcSettings).allowedTenants) {
          throw new AppError('validation_failed', 'allowedTenants is for connections created for a multi-tenant issuer', [{ path: 'allowedTenants', message: 'not a multi-tenant connection' }]);
        }
        const next: OidcSettings | SamlSettings = {
          ...settings, ...(change.scopes ? { scopes: change.scopes } : {}),
          ...(change.allowedTenants ? { allowedTenants: tenantList(change.allowedTenants) } : {}),
          ...(change.certificates ? { certificates: samlCertificates(change.certificates) } : {}),
          ...(change.allowIdpInitiated !== undefined ? { allowIdpInitiated: change.allowIdpInitiated } : {}),
          ...(change.requireSignedResponse !== undefined ? { requireSignedResponse: change.requireSignedResponse } : {}),
          signIn: mergePolicy(policyOf(settings), change),
        };
        const sealed = change.clientSecret === undefined ? r.secret_sealed : await deps.sealer.seal(tx, secretRef(org.orgId, id), change.clientSecret);
        const updated = await one<ConnectionRow>(
          tx,
          sql`update sso_connections set name = ${change.name ?? r.name}, enabled = ${change.enabled ?? r.enabled},
                settings = ${JSON.stringify(next)}::jsonb, secret_sealed = ${sealed}, updated_at = ${deps.clock.now().toISOString()}
              where org_id = ${org.orgId} and id = ${id} returning ${COLUMNS}`,
        );
        const changed = Object.entries(change).filter(([, v]) => v !== undefined).map(([k]) => k).sort();
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'sso.connection_updated', target: { type: 'sso_connection', id },
          // Which fields changed, and the new values of those that are not secret.
          details: {
            changed, enabled: updated?.enabled ?? r.enabled, ...(change.name !== undefined ? { name: change.name } : {}), ...(change.scopes ? { scopes: change.scopes } : {}),
            ...(change.allowedTenants ? { allowedTenants: tenantList(change.allowedTenants) } : {}),
            ...(change.certificates ? { certificates: change.certificates.length } : {}),
            ...(change.allowIdpInitiated !== undefined ? { allowIdpInitiated: change.allowIdpInitiated } : {}),
            ...(change.requireSignedResponse !== undefined ? { requireSignedResponse: change.requireSignedResponse } : {}),
            ...policyChangeDetails(change),
          },
        });
        return view(updated as ConnectionRow);
      });
    },

    /**
     * An enabled connection as the sign-in needs it (its secret opened), for a caller who is not
     * signed in: bound to the org the flow names. `id` absent: the org's oldest enabled one. Null
     * when there is none (unknown, disabled, or another org's id). `disabledToo`: an admin's test
     * run, which may try a connection before it is enabled (it signs nobody in).
     */
    async forSignIn(orgId: string, id?: string, disabledToo = false): Promise<SignInConnection | null> {
      return deps.db.withTenant({ orgId }, async (tx) => {
        const r = await one<ConnectionRow>(
          tx,
          sql`select ${COLUMNS} from sso_connections where org_id = ${orgId} and (enabled or ${disabledToo}) and kind = 'oidc'
                and (${id ?? null}::uuid is null or id = ${id ?? null}::uuid)
              order by created_at, id limit 1`,
        );
        if (!r || r.secret_sealed === null) return null;
        const settings = settingsOf(r);
        return {
          orgId, id: r.id, kind: r.kind, settings, policy: policyOf(settings), updatedAt: r.updated_at,
          clientSecret: await deps.sealer.open(tx, secretRef(orgId, r.id), r.secret_sealed),
        };
      });
    },

    /** The kind of the enabled connection a sign-in would use (`id` absent: the org's oldest enabled one), or null. */
    async kindForSignIn(orgId: string, id?: string): Promise<{ id: string; kind: 'oidc' | 'saml' } | null> {
      const r = await deps.db.withTenant({ orgId }, (tx) =>
        one<{ id: string; kind: 'oidc' | 'saml' }>(
          tx,
          sql`select id, kind from sso_connections where org_id = ${orgId} and enabled
                and (${id ?? null}::uuid is null or id = ${id ?? null}::uuid)
              order by created_at, id limit 1`,
        ),
      );
      return r ?? null;
    },

    /**
     * The org of a SAML connection, for the public ACS and metadata routes (the global lookup:
     * the path names the connection only). Null for an unknown id or any other kind.
     */
    async samlOrgOf(connectionId: string): Promise<string | null> {
      const r = await deps.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
        one<{ org_id: string }>(tx, sql`select org_id from saml_acs_routes where connection_id = ${connectionId}`),
      );
      return r?.org_id ?? null;
    },

    /** A SAML connection bound to its org; `enabledOnly` for sign-ins (the SP metadata is served while it is being set up). */
    async samlConnection(orgId: string, id: string, enabledOnly: boolean): Promise<SamlSignInConnection | null> {
      const r = await deps.db.withTenant({ orgId }, (tx) =>
        one<ConnectionRow>(tx, sql`select ${COLUMNS} from sso_connections where org_id = ${orgId} and id = ${id} and kind = 'saml'`),
      );
      if (!r || (enabledOnly && !r.enabled)) return null;
      const settings = samlSettingsOf(r);
      return { orgId, id: r.id, kind: 'saml', settings, policy: policyOf(settings) };
    },

    async remove(ctx: RequestContext, id: string): Promise<void> {
      const org = requireOrg(ctx);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        await keepOneWayIn(tx, org.orgId, id);
        const n = await exec(tx, sql`delete from sso_connections where org_id = ${org.orgId} and id = ${id}`);
        if (n !== 1) throw new AppError('not_found');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'sso.connection_deleted', target: { type: 'sso_connection', id } });
      });
    },
  };
}

export type ConnectionService = ReturnType<typeof createConnectionService>;

/** Entra tenant ids as stored and compared: lower case, each once; undefined for none. */
function tenantList(list: readonly string[] | undefined): string[] | undefined {
  if (!list || list.length === 0) return undefined;
  return [...new Set(list.map((t) => t.toLowerCase()))];
}
