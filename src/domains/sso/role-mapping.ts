import { sql } from 'kysely';
import { z } from 'zod';
import type { OrgAccess, RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { ALWAYS_RESTRICTED_ROLES, BUILTIN_ROLE_PERMISSIONS, orgWideIn, PermissionSet, type BuiltinRole } from '../../kernel/permissions.js';
import { exec, one, rows, type Tx } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';

/**
 * IdP groups to roles. Owners are never made or unmade by an IdP: the owner role is only given
 * by an owner, in Palisade. Custom roles are not mapped (yet): their permissions change under
 * the mapping, which would need re-validation at each edit.
 */
export const MAPPABLE_ROLES = ['admin', 'member', 'viewer', 'project_viewer'] as const;
export type MappableRole = (typeof MAPPABLE_ROLES)[number];
const RANK: Record<MappableRole, number> = { admin: 4, member: 3, viewer: 2, project_viewer: 1 };

export const groupRole = z.strictObject({
  group: z.string().min(1).max(256).meta({ description: 'A value of the IdP\u2019s groups claim (OIDC) or attribute (SAML), compared exactly' }),
  role: z.enum(MAPPABLE_ROLES),
  projectIds: z.array(z.uuid()).min(1).max(100).optional().meta({
    description: 'Restricts the members this rule gives a role to these projects; absent: the role is org-wide (project_viewer needs projects)',
  }),
});
export type GroupRole = z.infer<typeof groupRole>;
export const groupRoles = z.array(groupRole).max(50).meta({
  description: 'Re-applied at every SSO sign-in: the highest role among the member\u2019s matching groups, or jitRole when none matches (none at all: the member is removed and refused)',
});

/** What the rules give someone in `groups`: null when no rule matches. */
export function roleFor(rules: readonly GroupRole[], groups: readonly string[]): { role: MappableRole; restricted: boolean; projectIds: string[] } | null {
  const matched = rules.filter((r) => groups.includes(r.group));
  if (matched.length === 0) return null;
  const role = matched.reduce<MappableRole>((best, r) => (RANK[r.role] > RANK[best] ? r.role : best), matched[0]?.role ?? 'project_viewer');
  const atRole = matched.filter((r) => r.role === role);
  // An org-wide grant of the winning role wins over a project-scoped one of the same role.
  const restricted = (ALWAYS_RESTRICTED_ROLES as readonly string[]).includes(role) || atRole.every((r) => r.projectIds !== undefined);
  const projectIds = restricted ? [...new Set(matched.flatMap((r) => r.projectIds ?? []))].sort() : [];
  return { role, restricted, projectIds };
}

/**
 * Refuses rules the admin could not apply by hand: a role holding permissions they lack, a
 * restriction of a role with org-wide permissions, project_viewer without projects, or a
 * project that is not this org's.
 */
export async function checkGroupRoles(tx: Tx, org: OrgAccess, rules: readonly GroupRole[]): Promise<void> {
  for (const [i, r] of rules.entries()) {
    const granted = PermissionSet.of(BUILTIN_ROLE_PERMISSIONS[r.role]);
    if (!org.permissions.covers(granted)) throw new AppError('privilege_escalation', `groupRoles[${i}]: the role ${r.role} holds permissions you do not have`);
    if (r.projectIds && orgWideIn(granted).length > 0) {
      throw new AppError('validation_failed', `groupRoles[${i}]: ${r.role} holds org-wide permissions and cannot be restricted to projects`, [{ path: `groupRoles.${i}.projectIds`, message: 'not for this role' }]);
    }
    if (!r.projectIds && (ALWAYS_RESTRICTED_ROLES as readonly string[]).includes(r.role)) {
      throw new AppError('validation_failed', `groupRoles[${i}]: ${r.role} needs projectIds`, [{ path: `groupRoles.${i}.projectIds`, message: 'required for this role' }]);
    }
  }
  const wanted = [...new Set(rules.flatMap((r) => r.projectIds ?? []))];
  if (wanted.length === 0) return;
  const found = await rows<{ id: string }>(tx, sql`select id::text from projects where org_id = ${org.orgId} and id = any(${wanted}::uuid[])`);
  const missing = wanted.filter((id) => !found.some((f) => f.id === id));
  if (missing.length > 0) throw new AppError('validation_failed', `groupRoles: no such project in this organization: ${missing.join(', ')}`, [{ path: 'groupRoles', message: 'unknown project' }]);
}

export interface MappingTarget {
  orgId: string;
  connectionId: string;
  rules: readonly GroupRole[];
  /** The role when no rule matches; null: no access. */
  fallback: BuiltinRole | null;
}

/**
 * Brings the member's role and projects in line with their groups at this sign-in, inside the
 * sign-in's transaction (bound to the org). Answers false when the groups give no access: the
 * membership is gone and the sign-in must be refused. Owners are left as they are.
 */
export async function applyGroupRoles(
  tx: Tx, ctx: RequestContext, audit: AuditWriter, onPrivilegeChange: (tx: Tx, userId: string) => Promise<void>,
  t: MappingTarget, userId: string, groups: readonly string[],
): Promise<boolean> {
  const current = await one<{ role: string; restricted: boolean }>(tx, sql`select role, restricted from memberships where org_id = ${t.orgId} and user_id = ${userId} for update`);
  if (current?.role === 'owner') return true;
  const fromGroups = roleFor(t.rules, groups);
  const next = fromGroups ?? (t.fallback ? { role: t.fallback, restricted: (ALWAYS_RESTRICTED_ROLES as readonly string[]).includes(t.fallback), projectIds: [] } : null);
  const via = { connectionId: t.connectionId, via: 'sso_groups' };
  if (!next) {
    if (current) {
      await exec(tx, sql`delete from memberships where org_id = ${t.orgId} and user_id = ${userId}`);
      await onPrivilegeChange(tx, userId);
      await audit.append(tx, t.orgId, ctx, { action: 'member.removed', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId }, details: { role: current.role, ...via } });
    }
    return false;
  }
  if (!current) {
    await exec(tx, sql`insert into memberships (org_id, user_id, role, restricted) values (${t.orgId}, ${userId}, ${next.role}, ${next.restricted})`);
    await audit.append(tx, t.orgId, ctx, {
      action: 'sso.member_provisioned', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
      details: { created: 'membership', role: next.role, restricted: next.restricted, ...via },
    });
  } else if (current.role !== next.role || current.restricted !== next.restricted) {
    await exec(tx, sql`update memberships set role = ${next.role}, custom_role_id = null, restricted = ${next.restricted} where org_id = ${t.orgId} and user_id = ${userId}`);
    await onPrivilegeChange(tx, userId);
    await audit.append(tx, t.orgId, ctx, {
      action: 'member.role_changed', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
      details: { from: current.role, to: next.role, restricted: next.restricted, ...via },
    });
  }
  if (next.restricted) await syncProjects(tx, ctx, audit, onPrivilegeChange, t, userId, next.projectIds);
  return true;
}

/** A restricted member reaches exactly the mapped projects that still exist. */
async function syncProjects(
  tx: Tx, ctx: RequestContext, audit: AuditWriter, onPrivilegeChange: (tx: Tx, userId: string) => Promise<void>,
  t: MappingTarget, userId: string, projectIds: readonly string[],
): Promise<void> {
  const removed = await rows<{ project_id: string }>(
    tx,
    sql`delete from project_access where org_id = ${t.orgId} and user_id = ${userId} and not (project_id = any(${projectIds}::uuid[])) returning project_id::text`,
  );
  const added = await rows<{ project_id: string }>(
    tx,
    sql`insert into project_access (org_id, project_id, user_id)
        select ${t.orgId}, p.id, ${userId} from projects p where p.org_id = ${t.orgId} and p.id = any(${projectIds}::uuid[])
        on conflict do nothing returning project_id::text`,
  );
  if (removed.length === 0 && added.length === 0) return;
  await onPrivilegeChange(tx, userId);
  const details = { userId, connectionId: t.connectionId, via: 'sso_groups' };
  for (const { project_id: id } of added) {
    await audit.append(tx, t.orgId, ctx, { action: 'project.member_assigned', target: { type: 'project', id }, actor: { type: 'user', id: userId }, details });
  }
  for (const { project_id: id } of removed) {
    await audit.append(tx, t.orgId, ctx, { action: 'project.member_unassigned', target: { type: 'project', id }, actor: { type: 'user', id: userId }, details });
  }
}
