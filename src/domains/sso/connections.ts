import { sql } from 'kysely';
import { newId, type FieldRef } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { exec, one, rows, type Database } from '../../db/database.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { discover, DiscoveryFailed, type EgressFetch } from './oidc.js';
import type { ConnectionView } from './responses.js';
import { DEFAULT_SIGN_IN_POLICY, mergePolicy, policyChangeDetails, policyOf, type PolicyChange, type SignInPolicy } from './policy.js';
import { checkGroupRoles } from './role-mapping.js';

/** A few IdPs per org (one per subsidiary or migration); the cap bounds storage and discovery calls. */
export const MAX_CONNECTIONS_PER_ORG = 20;

/** The one OIDC redirect URI: the browser's state cookie, not the path, names the connection. */
export const OIDC_CALLBACK_PATH = '/api/auth/sso/oidc/callback';

export interface OidcSettings {
  issuer: string;
  clientId: string;
  scopes: string[];
  signIn?: Partial<SignInPolicy>;
}

interface ConnectionRow {
  id: string;
  kind: 'oidc' | 'saml';
  name: string;
  enabled: boolean;
  settings: OidcSettings | string;
  secret_sealed: string | null;
  created_by: string;
  created_at: Date;
  updated_at: Date;
}

const COLUMNS = sql`id, kind, name, enabled, settings, secret_sealed, created_by, created_at, updated_at`;

const secretRef = (orgId: string, id: string): FieldRef => ({ scope: orgId, table: 'sso_connections', column: 'secret_sealed', row: id });

// PGlite hands jsonb back parsed, node-postgres too; a string means a driver that did not.
const settingsOf = (r: ConnectionRow): OidcSettings => (typeof r.settings === 'string' ? (JSON.parse(r.settings) as OidcSettings) : r.settings);

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
}

export interface ConnectionChange extends PolicyChange {
  name?: string | undefined;
  enabled?: boolean | undefined;
  clientSecret?: string | undefined;
  scopes?: string[] | undefined;
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
    return {
      id: r.id, kind: r.kind, name: r.name, enabled: r.enabled, signIn: policyOf(s),
      oidc: r.kind === 'oidc' ? { issuer: s.issuer, clientId: s.clientId, scopes: s.scopes, clientSecretSet: r.secret_sealed !== null, redirectUri } : null,
      createdBy: r.created_by, createdAt: r.created_at.toISOString(), updatedAt: r.updated_at.toISOString(),
    };
  };

  async function checkIssuer(issuer: string, clientId: string, clientSecret: string): Promise<void> {
    try {
      await discover({ issuer, clientId, clientSecret }, deps.egress, deps.allowInsecureIssuers);
    } catch (err) {
      if (!(err instanceof DiscoveryFailed)) throw err;
      throw new AppError('validation_failed', `the issuer's discovery document could not be read: ${err.reason}`, [{ path: 'issuer', message: err.reason }]);
    }
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
      await checkIssuer(input.issuer, input.clientId, input.clientSecret);
      const id = newId();
      const settings: OidcSettings = {
        issuer: input.issuer, clientId: input.clientId, scopes: input.scopes ?? ['openid', 'email', 'profile'],
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
          details: { kind: 'oidc', name: input.name, issuer: settings.issuer, clientId: settings.clientId, ...policyChangeDetails(policyOf(settings)) },
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
        await checkIssuer(current.oidc.issuer, current.oidc.clientId, change.clientSecret);
      }
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await one<ConnectionRow>(tx, sql`select ${COLUMNS} from sso_connections where org_id = ${org.orgId} and id = ${id} for update`);
        if (!r) throw new AppError('not_found');
        const settings = settingsOf(r);
        if (change.groupRoles) await checkGroupRoles(tx, org, change.groupRoles);
        const next: OidcSettings = {
          ...settings, ...(change.scopes ? { scopes: change.scopes } : {}), signIn: mergePolicy(policyOf(settings), change),
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

    async remove(ctx: RequestContext, id: string): Promise<void> {
      const org = requireOrg(ctx);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const n = await exec(tx, sql`delete from sso_connections where org_id = ${org.orgId} and id = ${id}`);
        if (n !== 1) throw new AppError('not_found');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'sso.connection_deleted', target: { type: 'sso_connection', id } });
      });
    },
  };
}

export type ConnectionService = ReturnType<typeof createConnectionService>;
