import { sql } from 'kysely';
import { generateApiToken, newId, parseApiToken, sha256Hex } from '../../crypto/index.js';
import { exec, one, rows, type BoundColumns, type Database, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type ApiKeyKind, type Actor, type OrgAccess, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { isUuid } from '../../kernel/ids.js';
import { API_KEY_PERMISSIONS, BROWSER_SAFE_PERMISSIONS, PermissionSet, PROJECT_KEY_PERMISSIONS, type Permission } from '../../kernel/permissions.js';
import type { AuditWriter } from '../audit/index.js';
import { assertCanActOnCredentials, bindingOf, effectivePermissionsOf, requireOrg, type MembershipRow } from '../tenancy/index.js';
import type { ApiKeyView, KeyIdentity } from './responses.js';
import type { KeyUsage } from './usage.js';

/** An org holds at most this many keys that are neither revoked nor expired. */
export const MAX_ACTIVE_KEYS = 500;
/** One member holds at most this many active keys (within the org's cap). */
export const MAX_ACTIVE_KEYS_PER_CREATOR = 25;
/** The furthest expiry a key may be given. */
export const MAX_KEY_DAYS = 730;

const KEY_SET = PermissionSet.of(API_KEY_PERMISSIONS);
const BROWSER_SET = PermissionSet.of(BROWSER_SAFE_PERMISSIONS);
const PROJECT_SET = PermissionSet.of(PROJECT_KEY_PERMISSIONS);

export interface NewKey {
  name: string;
  kind: ApiKeyKind;
  permissions: Permission[];
  projectId?: string | null | undefined;
  expiresAt?: Date | null | undefined;
}

interface KeyRow {
  id: string;
  name: string;
  kind: ApiKeyKind;
  prefix: string;
  last_four: string;
  permissions: string[];
  project_id: string | null;
  created_by: string;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const KEY_COLUMNS = sql`id, name, kind, prefix, last_four, permissions, project_id, created_by, created_at, expires_at, last_used_at, revoked_at`;

/** The row palisade_key_in_org (migration 010) returns: the key, its creator's standing, the org's policies. */
interface KeyStanding extends BoundColumns {
  id: string;
  kind: ApiKeyKind;
  permissions: string[];
  project_id: string | null;
  created_by: string;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  role: MembershipRow['role'] | null;
  custom_name: string | null;
  custom_permissions: string[] | null;
  restricted: boolean | null;
  project_ids: string[] | null;
  admin_ip_allowlist: string[] | null;
  browser_origins: string[];
  mfa_enforced_from: Date | null;
  creator_mfa_enabled: boolean | null;
  purge_after: Date | null;
}

const KIND_OF_PREFIX = { sk: 'secret', pk: 'publishable' } as const;

/**
 * keys:manage reaches every member's keys, but a holder restricted to projects acts on their
 * own only: like every other action on members (assertCanActOn), a restricted member does not
 * act on unrestricted members and owners, nor see keys bound to projects outside their scope.
 */
function managesAll(org: OrgAccess): boolean {
  return org.permissions.has('keys:manage') && org.projectIds === null;
}

export function createApiKeyService(deps: { db: Database; audit: AuditWriter; clock: Clock; usage: KeyUsage }) {
  const now = () => deps.clock.now();

  function view(r: KeyRow): ApiKeyView {
    const expired = r.expires_at !== null && r.expires_at <= now();
    return {
      id: r.id,
      name: r.name,
      kind: r.kind,
      prefix: r.prefix,
      lastFour: r.last_four,
      permissions: PermissionSet.of(r.permissions).list(),
      projectId: r.project_id,
      createdBy: r.created_by,
      createdAt: r.created_at.toISOString(),
      expiresAt: r.expires_at?.toISOString() ?? null,
      lastUsedAt: r.last_used_at?.toISOString() ?? null,
      revokedAt: r.revoked_at?.toISOString() ?? null,
      status: r.revoked_at ? 'revoked' : expired ? 'expired' : 'active',
    };
  }

  function checkScopes(org: OrgAccess, input: NewKey): PermissionSet {
    // Like every role, every key can read its org (and so introspect itself at /v1/orgs/:orgId/key).
    const wanted = PermissionSet.of([...input.permissions, 'org:read']);
    if (!KEY_SET.covers(wanted)) throw new AppError('validation_failed', `an API key may hold only ${API_KEY_PERMISSIONS.join(', ')}`);
    if (input.kind === 'publishable' && !BROWSER_SET.covers(wanted)) {
      throw new AppError('validation_failed', `a publishable key is public: it may hold only ${BROWSER_SAFE_PERMISSIONS.join(', ')}`);
    }
    if (input.projectId && !PROJECT_SET.covers(wanted)) {
      throw new AppError('validation_failed', `a key bound to a project may hold only ${PROJECT_KEY_PERMISSIONS.join(', ')}`);
    }
    if (!org.permissions.covers(wanted)) {
      const missing = wanted.list().filter((p) => !org.permissions.has(p));
      throw new AppError('privilege_escalation', `a key cannot hold a permission you do not have here: ${missing.join(', ')}`);
    }
    return wanted;
  }

  return {
    /** Creates a key; the token is in this answer and nowhere else, ever. */
    async create(ctx: RequestContext, input: NewKey): Promise<{ key: ApiKeyView; token: string }> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      const scopes = checkScopes(org, input);
      const at = now();
      if (input.expiresAt) {
        if (input.expiresAt.getTime() <= at.getTime() + 60_000) throw new AppError('validation_failed', 'expiresAt must be at least a minute ahead');
        if (input.expiresAt.getTime() > at.getTime() + MAX_KEY_DAYS * 86_400_000) throw new AppError('validation_failed', `expiresAt is at most ${MAX_KEY_DAYS} days ahead`);
      }
      const projectId = input.projectId ?? null;
      // A restricted member binds keys only to projects they are assigned to (the RLS scope of
      // this transaction makes any other project invisible: 404, as for any unseen project).
      if (projectId && org.projectIds !== null && !org.projectIds.includes(projectId)) throw new AppError('not_found');
      const token = generateApiToken(input.kind === 'secret' ? 'sk' : 'pk');
      const id = newId();
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        if (projectId && !(await one(tx, sql`select 1 from projects where org_id = ${org.orgId} and id = ${projectId}`))) {
          throw new AppError('not_found');
        }
        const active = await one<{ n: number; mine: number }>(
          tx,
          sql`select count(*)::int as n, (count(*) filter (where created_by = ${user.userId}))::int as mine
              from api_keys where org_id = ${org.orgId} and revoked_at is null
              and (expires_at is null or expires_at > ${at.toISOString()})`,
        );
        if ((active?.n ?? 0) >= MAX_ACTIVE_KEYS) throw new AppError('conflict', `the organization has ${MAX_ACTIVE_KEYS} active keys: revoke some first`);
        if ((active?.mine ?? 0) >= MAX_ACTIVE_KEYS_PER_CREATOR) {
          throw new AppError('conflict', `you have ${MAX_ACTIVE_KEYS_PER_CREATOR} active keys in this organization: revoke some first`);
        }
        const r = await one<KeyRow>(
          tx,
          sql`insert into api_keys (org_id, id, token_hash, kind, name, prefix, last_four, permissions, project_id, created_by,
                creator_joined_at, created_at, expires_at)
              values (${org.orgId}, ${id}, ${sha256Hex(token)}, ${input.kind}, ${input.name}, ${token.slice(0, 7)}, ${token.slice(-4)},
                ${scopes.list()}, ${projectId}, ${user.userId},
                -- Copied in SQL: a JavaScript Date would drop the microseconds the key is matched on.
                (select created_at from memberships where org_id = ${org.orgId} and user_id = ${user.userId}),
                ${at.toISOString()}, ${input.expiresAt?.toISOString() ?? null})
              returning ${KEY_COLUMNS}`,
        );
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'api_key.created',
          target: { type: 'api_key', id },
          details: { name: input.name, kind: input.kind, permissions: scopes.list(), projectId, expiresAt: input.expiresAt?.toISOString() ?? null },
        });
        return { key: view(r as KeyRow), token };
      });
    },

    /** Holders of keys:manage see every key of the org; others their own. */
    async list(ctx: RequestContext): Promise<ApiKeyView[]> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      const all = managesAll(org);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const list = await rows<KeyRow>(
          tx,
          all
            ? sql`select ${KEY_COLUMNS} from api_keys where org_id = ${org.orgId} order by created_at desc, id`
            : sql`select ${KEY_COLUMNS} from api_keys where org_id = ${org.orgId} and created_by = ${user.userId} order by created_at desc, id`,
        );
        return list.map(view);
      });
    },

    /**
     * Revokes at once (the next request with it is refused). Another member's key needs
     * keys:manage, and acting on its creator (assertCanActOnCredentials: an owner's key only with
     * owners:manage).
     */
    async revoke(ctx: RequestContext, keyId: string): Promise<void> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      const all = managesAll(org);
      const creatorOf = (tx: Tx) => one<{ created_by: string; revoked_at: Date | null; name: string }>(
        tx,
        sql`select created_by, revoked_at, name from api_keys where org_id = ${org.orgId} and id = ${keyId} for update`,
      );
      // The creator never changes: read first, since the rule reads the creator's standing in a
      // transaction of its own.
      const key = await deps.db.withTenant(bindingOf(ctx), creatorOf);
      // Without keys:manage, another member's key is as invisible as one of another org.
      if (!key || (!all && key.created_by !== user.userId)) throw new AppError('not_found');
      await assertCanActOnCredentials(deps.db, org, user.userId, key.created_by, 'revoke the API key of');
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await creatorOf(tx);
        if (!r) throw new AppError('not_found');
        if (r.revoked_at) throw new AppError('conflict', 'the key is already revoked');
        await exec(tx, sql`update api_keys set revoked_at = ${now().toISOString()}, revoked_by = ${user.userId} where org_id = ${org.orgId} and id = ${keyId}`);
        await deps.audit.append(tx, org.orgId, ctx, { action: 'api_key.revoked', target: { type: 'api_key', id: keyId }, details: { name: r.name } });
      });
    },

    /** Revokes, with an audit event each, the keys bound to a project that is being deleted (in its transaction). */
    async revokeBoundTo(tx: Tx, ctx: RequestContext, orgId: string, projectId: string): Promise<void> {
      const revokedBy = ctx.actor.type === 'user' ? ctx.actor.userId : null;
      const revoked = await rows<{ id: string; name: string }>(
        tx,
        sql`update api_keys set revoked_at = ${now().toISOString()}, revoked_by = ${revokedBy}
            where org_id = ${orgId} and project_id = ${projectId} and revoked_at is null returning id, name`,
      );
      for (const k of revoked) {
        await deps.audit.append(tx, orgId, ctx, { action: 'api_key.revoked', target: { type: 'api_key', id: k.id }, details: { name: k.name, reason: 'project_deleted' } });
      }
    },

    /** What the calling key may do now (its scopes within its creator's current rights). */
    whoami(ctx: RequestContext): KeyIdentity {
      const org = requireOrg(ctx);
      if (ctx.actor.type !== 'api_key') throw new AppError('unauthenticated');
      const projectIds = org.projectIds === null ? null : [...org.projectIds];
      return { keyId: ctx.actor.keyId, kind: ctx.actor.kind, orgId: org.orgId, permissions: org.permissions.list(), projectIds };
    },

    /**
     * The key's actor and standing in `orgId`, or null when the token is not a live key of that
     * org (malformed, bad checksum, unknown, revoked, expired, creator gone). The checksum is
     * checked before anything reaches the database.
     */
    async authenticate(token: string, orgId: string, origin: string | null): Promise<{ actor: Actor; access: OrgAccess } | null> {
      const prefix = parseApiToken(token);
      if (!prefix || !isUuid(orgId)) return null;
      // As the database spells it, in the statement and in the cache's tags (auth-cache.ts).
      orgId = orgId.toLowerCase();
      // All literals (a hex digest and a checked uuid): on PostgreSQL it shares one message with
      // BEGIN and sets the binding the handler's queries run under (migration 010).
      const k = await deps.db.authenticateInOrg(
        orgId,
        sql<KeyStanding>`select * from palisade_key_in_org(${sql.lit(sha256Hex(token))}, ${sql.lit(orgId)}::uuid)`,
        // What the row depends on (migration 040 announces each change): it may be served from the cache.
        (row) => (row.role ? [`k:${row.id}`, `u:${row.created_by}`, `m:${orgId}:${row.created_by}`, `o:${orgId}`] : null),
      );
      const at = now();
      if (!k || k.revoked_at || !k.role || k.kind !== KIND_OF_PREFIX[prefix]) return null;
      if (k.expires_at && at >= k.expires_at) return null;
      // Keys are not a way around the org's MFA requirement: a creator without the required
      // second factor has no access, and neither have their keys.
      if (k.mfa_enforced_from && at >= k.mfa_enforced_from && !k.creator_mfa_enabled) {
        throw new AppError('mfa_enrollment_required', 'the key\u2019s creator has not enrolled the second factor this organization requires');
      }
      if (k.kind === 'publishable' && (!origin || !k.browser_origins.includes(origin))) {
        throw new AppError('origin_not_allowed', origin ? `${origin} is not a registered browser origin of this organization` : 'publishable keys need an Origin header');
      }
      // Re-checked at every use: the key loses whatever its creator has lost since.
      let ceiling = k.kind === 'publishable' ? BROWSER_SET : KEY_SET;
      if (k.project_id) ceiling = ceiling.intersect(PROJECT_SET);
      // The creator's effective permissions: a creator restricted to projects holds no org-wide
      // one (review R4 finding 4), so neither does a key they made before they were restricted.
      const creator = effectivePermissionsOf(k.role, k.custom_permissions, k.restricted ?? false);
      const permissions = PermissionSet.of(k.permissions).intersect(creator).intersect(ceiling);
      const scope = k.bound_project_ids;
      deps.usage.note(orgId, k.id, k.last_used_at, at);
      return {
        actor: { type: 'api_key', keyId: k.id, kind: k.kind, createdBy: k.created_by },
        access: {
          orgId,
          role: 'api_key',
          roleLabel: `api_key:${k.kind}`,
          permissions,
          projectIds: scope === '*' ? null : scope === '' ? [] : scope.split(','),
          adminIpAllowlist: k.admin_ip_allowlist ?? [],
          purgeAfter: k.purge_after,
        },
      };
    },
  };
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>;
