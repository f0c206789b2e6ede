import { sql } from 'kysely';
import { ipInList, normalizeCidr } from '../../kernel/ip.js';
import { newId } from '../../crypto/index.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { exec, one, rows, writeUnlessTaken, type Tx } from '../../db/database.js';
import type { Permission } from '../../kernel/permissions.js';
import { accessFrom, bindingOf, requireOrg, type MembershipRow } from './access.js';
import type { TenancyDeps } from './deps.js';
import type { AuditDetails } from '../audit/index.js';
import type { OrgSettingsView, OrgView } from './responses.js';

/**
 * One org of the signed-in user (GET /api/me, every completed sign-in): what the console shows
 * and hides is computed from `permissions` and `projectIds`, so they are what the server enforces
 * at request time (accessFrom over palisade_membership: a restricted member holds no org-wide
 * permission). The org's admin IP allowlist and MFA requirement, which depend on the request,
 * still apply on top.
 */
export type MyOrgView = OrgView & {
  role: string;
  /** The custom role's name for a custom role, else the role key. */
  roleLabel: string;
  /** Effective permissions, sorted. */
  permissions: Permission[];
  /** Null: every project; else the assigned ones (sorted). */
  projectIds: string[] | null;
};

export interface OrgSettingsInput {
  sessionIdleMinutes?: number | null | undefined;
  sessionAbsoluteHours?: number | null | undefined;
  mfaRequired?: boolean | undefined;
  mfaGraceDays?: number | undefined;
  adminIpAllowlist?: string[] | undefined;
  browserOrigins?: string[] | undefined;
  /** Saving an allowlist that excludes the caller's own address needs this, explicitly. */
  confirmLockout?: boolean | undefined;
}

/**
 * An origin exactly as browsers send it: https://host[:port], or plain http for a loopback
 * page under development. Null for anything else (paths, wildcards, other schemes).
 */
export function normalizeBrowserOrigin(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  // Letters, digits, dots and dashes (or a bracketed IPv6 literal): the URL parser accepts
  // `*.example.com`, which a browser never sends as an Origin.
  if (!/^([a-z0-9-]+\.)*[a-z0-9-]+$|^\[[0-9a-f:.]+\]$/.test(url.hostname)) return null;
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) return null;
  if (url.username || url.password || url.search || url.hash || (url.pathname !== '/' && url.pathname !== '')) return null;
  if (value.replace(/\/$/, '') !== url.origin) return null;
  return url.origin;
}

/**
 * Creates an org with `ownerId` as its owner, inside a transaction bound to the new org id.
 * Used by registration and by "create another organization".
 */
export async function insertOrg(
  deps: Pick<TenancyDeps, 'audit'>,
  tx: Tx,
  ctx: RequestContext,
  org: { id: string; slug: string; name: string },
  ownerId: string,
): Promise<void> {
  if (!(await writeUnlessTaken(tx, sql`insert into organizations (org_id, slug, name) values (${org.id}, ${org.slug}, ${org.name})`))) {
    throw new AppError('conflict', 'that organization slug is taken');
  }
  await exec(tx, sql`insert into org_settings (org_id) values (${org.id})`);
  await exec(tx, sql`insert into memberships (org_id, user_id, role) values (${org.id}, ${ownerId}, 'owner')`);
  await deps.audit.append(tx, org.id, ctx, {
    action: 'org.created',
    target: { type: 'org', id: org.id },
    details: { slug: org.slug },
    actor: { type: 'user', id: ownerId, role: 'owner' },
  });
}

/**
 * Break-glass (`palisade allowlist clear --org SLUG`): empties an org's admin IP allowlist when
 * no owner can act through the API (none can step up, or a list saved by an admin before owners
 * alone could change it shuts them out of everything else). Audited in the org's chain as the
 * operator, with the list it cleared. Null when the org has no settings (no such org).
 */
export async function clearAdminIpAllowlist(deps: Pick<TenancyDeps, 'db' | 'audit'>, ctx: RequestContext, orgId: string): Promise<string[] | null> {
  return deps.db.withTenant({ orgId }, async (tx) => {
    const row = await one<{ admin_ip_allowlist: string[] }>(tx, sql`select admin_ip_allowlist from org_settings where org_id = ${orgId} for update`);
    if (!row) return null;
    await exec(tx, sql`update org_settings set admin_ip_allowlist = '{}', updated_at = now() where org_id = ${orgId}`);
    await deps.audit.append(tx, orgId, ctx, {
      action: 'org.settings_updated',
      target: { type: 'org', id: orgId },
      details: { adminIpAllowlist: [], clearedAdminIpAllowlist: row.admin_ip_allowlist, breakGlass: true },
    });
    return row.admin_ip_allowlist;
  });
}

export function deletionOf(o: { deletion_requested_at: Date | null; purge_after: Date | null }): OrgView['deletion'] {
  return o.deletion_requested_at && o.purge_after ? { requestedAt: o.deletion_requested_at.toISOString(), purgeAfter: o.purge_after.toISOString() } : null;
}

/** listMine derives permissions and scope only: the session and network policy are not read. */
const NO_POLICY = {
  session_idle_seconds: null, session_absolute_seconds: null, sessions_revoked_at: null, mfa_enforced_from: null, admin_ip_allowlist: null,
} satisfies Partial<MembershipRow>;

export function createOrgService(deps: TenancyDeps) {
  return {
    async create(ctx: RequestContext, userId: string, input: { slug: string; name: string }): Promise<OrgView> {
      const id = newId();
      return deps.db.withTenant({ orgId: id, userId }, async (tx) => {
        await insertOrg(deps, tx, ctx, { id, ...input }, userId);
        const r = await one<{ created_at: Date }>(tx, sql`select created_at from organizations where org_id = ${id}`);
        return { id, slug: input.slug, name: input.name, createdAt: (r?.created_at ?? new Date()).toISOString(), deletion: null };
      });
    },

    async listMine(userId: string): Promise<MyOrgView[]> {
      // One read with no org bound (migration 026 lets a user see their own custom role and
      // project assignments in their orgs); the derivation is accessFrom, as for every request.
      const list = await deps.db.withTenant({ orgId: null, userId, projectIds: null }, (tx) =>
        rows<{ org_id: string; slug: string; name: string; created_at: Date; deletion_requested_at: Date | null }
          & Pick<MembershipRow, 'role' | 'restricted' | 'custom_role_id' | 'custom_name' | 'custom_permissions' | 'project_ids' | 'purge_after'>>(
          tx,
          sql`select o.org_id, o.slug, o.name, o.created_at, o.deletion_requested_at, o.purge_after, m.role, m.restricted, m.custom_role_id,
                     cr.name as custom_name, cr.permissions as custom_permissions,
                     case when m.restricted then coalesce(
                       (select array_agg(pa.project_id::text order by pa.project_id) from project_access pa
                        where pa.org_id = m.org_id and pa.user_id = m.user_id), '{}') end as project_ids
              from memberships m
              join organizations o on o.org_id = m.org_id
              left join custom_roles cr on cr.org_id = m.org_id and cr.id = m.custom_role_id
              where m.user_id = ${userId} order by o.slug`,
        ),
      );
      return list.map((o) => {
        const access = accessFrom(o.org_id, { ...NO_POLICY, ...o });
        return {
          id: o.org_id, slug: o.slug, name: o.name, createdAt: o.created_at.toISOString(), deletion: deletionOf(o), role: o.role,
          roleLabel: o.role === 'custom' ? (o.custom_name ?? 'custom') : o.role,
          permissions: access.permissions.list().sort(),
          projectIds: access.projectIds === null ? null : [...access.projectIds].sort(),
        };
      });
    },

    async get(ctx: RequestContext): Promise<OrgView> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const o = await one<{ slug: string; name: string; created_at: Date; deletion_requested_at: Date | null; purge_after: Date | null }>(
          tx,
          sql`select slug, name, created_at, deletion_requested_at, purge_after from organizations where org_id = ${org.orgId}`,
        );
        if (!o) throw new AppError('not_found');
        return { id: org.orgId, slug: o.slug, name: o.name, createdAt: o.created_at.toISOString(), deletion: deletionOf(o) };
      });
    },

    async rename(ctx: RequestContext, name: string): Promise<OrgView> {
      const org = requireOrg(ctx);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const n = await exec(tx, sql`update organizations set name = ${name} where org_id = ${org.orgId}`);
        if (n !== 1) throw new AppError('not_found');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'org.updated', target: { type: 'org', id: org.orgId }, details: { name } });
      });
      return this.get(ctx);
    },

    async getSettings(ctx: RequestContext): Promise<OrgSettingsView> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const s = await one<{
          session_idle_seconds: number | null; session_absolute_seconds: number | null; mfa_enforced_from: Date | null; admin_ip_allowlist: string[] | null;
          browser_origins: string[] | null;
        }>(
          tx,
          sql`select session_idle_seconds, session_absolute_seconds, mfa_enforced_from, admin_ip_allowlist, browser_origins
              from org_settings where org_id = ${org.orgId}`,
        );
        return {
          sessionIdleMinutes: s?.session_idle_seconds != null ? s.session_idle_seconds / 60 : null,
          sessionAbsoluteHours: s?.session_absolute_seconds != null ? s.session_absolute_seconds / 3600 : null,
          mfaRequired: Boolean(s?.mfa_enforced_from),
          mfaEnforcedFrom: s?.mfa_enforced_from?.toISOString() ?? null,
          adminIpAllowlist: s?.admin_ip_allowlist ?? [],
          browserOrigins: s?.browser_origins ?? [],
        };
      });
    },

    async updateSettings(ctx: RequestContext, input: OrgSettingsInput): Promise<OrgSettingsView> {
      const org = requireOrg(ctx);
      // The list decides where admin-level work happens, owners' included: an admin who could set
      // it could lock every owner out of their own org.
      if (input.adminIpAllowlist !== undefined && !org.permissions.has('owners:manage')) {
        throw new AppError('privilege_escalation', 'changing the admin IP allowlist needs owners:manage (owners only)');
      }
      // From outside the list only an owner gets here (the pipeline's owner recovery), and only to
      // change the list: everything else waits until they are inside it, or it lets them in.
      const inForce = org.adminIpAllowlist ?? [];
      if (inForce.length > 0 && !ipInList(ctx.ip, inForce)) {
        const others = (Object.keys(input) as (keyof OrgSettingsInput)[]).filter(
          (k) => input[k] !== undefined && k !== 'adminIpAllowlist' && k !== 'confirmLockout',
        );
        if (others.length > 0) {
          throw new AppError('ip_not_allowed', `from outside the admin IP allowlist an owner changes only the list itself, not ${others.join(', ')}`);
        }
      }
      let allowlist: string[] | undefined;
      if (input.adminIpAllowlist !== undefined) {
        const normalized = input.adminIpAllowlist.map((e) => ({ e, cidr: normalizeCidr(e) }));
        const bad = normalized.filter((n) => !n.cidr).map((n) => n.e);
        if (bad.length > 0) throw new AppError('validation_failed', `not an IP address or CIDR range: ${bad.slice(0, 5).join(', ')}`);
        allowlist = [...new Set(normalized.map((n) => n.cidr as string))];
        if (allowlist.length > 0 && !ipInList(ctx.ip, allowlist) && !input.confirmLockout) {
          throw new AppError('conflict', `the list does not include your current address (${ctx.ip}): you would lose admin access from here; resend with confirmLockout: true to save it anyway`);
        }
      }
      let origins: string[] | undefined;
      if (input.browserOrigins !== undefined) {
        const bad = input.browserOrigins.filter((o) => !normalizeBrowserOrigin(o));
        if (bad.length > 0) throw new AppError('validation_failed', `not a browser origin (https://host[:port]): ${bad.slice(0, 5).join(', ')}`);
        origins = [...new Set(input.browserOrigins.map((o) => normalizeBrowserOrigin(o) as string))];
      }
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const idle = input.sessionIdleMinutes === undefined ? undefined : input.sessionIdleMinutes === null ? null : input.sessionIdleMinutes * 60;
        const abs = input.sessionAbsoluteHours === undefined ? undefined : input.sessionAbsoluteHours === null ? null : input.sessionAbsoluteHours * 3600;
        const current = await one<{ mfa_enforced_from: Date | null }>(tx, sql`select mfa_enforced_from from org_settings where org_id = ${org.orgId} for update`);
        // Turning MFA on starts the grace period now; leaving it on keeps the date it had.
        let enforcedFrom = current?.mfa_enforced_from ?? null;
        if (input.mfaRequired === false) enforcedFrom = null;
        if (input.mfaRequired === true && (!enforcedFrom || input.mfaGraceDays !== undefined)) {
          enforcedFrom = new Date(deps.clock.now().getTime() + (input.mfaGraceDays ?? 0) * 86_400_000);
        }
        await exec(
          tx,
          sql`insert into org_settings (org_id, session_idle_seconds, session_absolute_seconds, mfa_enforced_from, admin_ip_allowlist,
                browser_origins, updated_at)
              values (${org.orgId}, ${idle ?? null}, ${abs ?? null}, ${enforcedFrom?.toISOString() ?? null}, ${allowlist ?? []}, ${origins ?? []}, now())
              on conflict (org_id) do update set
                session_idle_seconds = case when ${idle !== undefined} then excluded.session_idle_seconds else org_settings.session_idle_seconds end,
                session_absolute_seconds = case when ${abs !== undefined} then excluded.session_absolute_seconds else org_settings.session_absolute_seconds end,
                mfa_enforced_from = excluded.mfa_enforced_from,
                admin_ip_allowlist = case when ${allowlist !== undefined} then excluded.admin_ip_allowlist else org_settings.admin_ip_allowlist end,
                browser_origins = case when ${origins !== undefined} then excluded.browser_origins else org_settings.browser_origins end,
                updated_at = now()`,
        );
        const details: AuditDetails = {};
        if (input.sessionIdleMinutes !== undefined) details.sessionIdleMinutes = input.sessionIdleMinutes;
        if (input.sessionAbsoluteHours !== undefined) details.sessionAbsoluteHours = input.sessionAbsoluteHours;
        if (input.mfaRequired !== undefined) details.mfaEnforcedFrom = enforcedFrom?.toISOString() ?? null;
        if (allowlist !== undefined) details.adminIpAllowlist = allowlist;
        if (origins !== undefined) details.browserOrigins = origins;
        if (allowlist !== undefined && allowlist.length > 0 && !ipInList(ctx.ip, allowlist)) details.excludesCaller = true;
        await deps.audit.append(tx, org.orgId, ctx, { action: 'org.settings_updated', target: { type: 'org', id: org.orgId }, details });
      });
      return this.getSettings(ctx);
    },
  };
}

export type OrgService = ReturnType<typeof createOrgService>;
