import { sql } from 'kysely';
import { byEmail, withPeople, type SealedPerson } from '../identity/people.js';
import type { OrgAccess, RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { BUILTIN_ROLES, type BuiltinRole } from '../../kernel/permissions.js';
import { exec, one, rows, type Tx } from '../../db/database.js';
import {
  assertCanActOn, assertCanGrant, assertCanManage, assertCanScope, assertRestrictable, bindingOf, isRestricted, permissionsOf, requireOrg, type RoleKey,
} from './access.js';
import type { TenancyDeps } from './deps.js';
import type { MemberView } from './responses.js';

export interface RoleAssignment {
  role: RoleKey;
  customRoleId?: string | null | undefined;
  restricted?: boolean | undefined;
}

interface TargetRow {
  role: RoleKey;
  custom_role_id: string | null;
  custom_permissions: string[] | null;
  restricted: boolean;
}

async function lockTarget(tx: Tx, orgId: string, userId: string): Promise<TargetRow> {
  const t = await one<TargetRow>(
    tx,
    sql`select m.role, m.custom_role_id, m.restricted, cr.permissions as custom_permissions
        from memberships m left join custom_roles cr on cr.org_id = m.org_id and cr.id = m.custom_role_id
        where m.org_id = ${orgId} and m.user_id = ${userId} for update of m`,
  );
  if (!t) throw new AppError('not_found');
  return t;
}

/**
 * Locks the org's owner rows, in user id order. Every role change, removal and leave takes
 * these locks before the target's row: two owners acting on each other at once then queue
 * instead of deadlocking (each holding their target's row while waiting for the other's).
 */
async function lockOwners(tx: Tx, orgId: string): Promise<void> {
  await exec(tx, sql`select user_id from memberships where org_id = ${orgId} and role = 'owner' order by user_id for update`);
}

/**
 * The start of every action on a member: owner rows then the target's row locked (one order),
 * and the actor must be able to manage the target as they are now.
 */
async function lockForAction(tx: Tx, org: OrgAccess, userId: string, verb: string): Promise<TargetRow> {
  await lockOwners(tx, org.orgId);
  const target = await lockTarget(tx, org.orgId, userId);
  assertCanManage(org, { role: target.role, customPermissions: target.custom_permissions }, verb);
  return target;
}

/** Locks every owner row, then refuses when `userId` is the only one. */
async function assertNotLastOwner(tx: Tx, orgId: string, userId: string): Promise<void> {
  const owners = await rows<{ user_id: string }>(
    tx,
    sql`select user_id from memberships where org_id = ${orgId} and role = 'owner' order by user_id for update`,
  );
  if (owners.length <= 1 && owners.some((o) => o.user_id === userId)) throw new AppError('last_owner');
}

/** Resolves the permissions a role assignment grants (custom roles are read under RLS). */
export async function grantedBy(tx: Tx, a: RoleAssignment) {
  if (a.role === 'custom') {
    if (!a.customRoleId) throw new AppError('validation_failed', 'customRoleId is required for role "custom"');
    // Shared lock: an edit of the role (roles.ts) waits for this assignment, then counts it among
    // the role's holders; an assignment waiting on an edit reads the edited permissions.
    const r = await one<{ permissions: string[] }>(tx, sql`select permissions from custom_roles where id = ${a.customRoleId} for share`);
    if (!r) throw new AppError('not_found', 'no such custom role');
    return permissionsOf('custom', r.permissions);
  }
  if (a.customRoleId) throw new AppError('validation_failed', 'customRoleId is only for role "custom"');
  if (!(BUILTIN_ROLES as readonly string[]).includes(a.role)) throw new AppError('validation_failed', 'unknown role');
  return permissionsOf(a.role as BuiltinRole, null);
}

export function createMemberService(deps: TenancyDeps) {
  return {
    /**
     * Every member, for an unrestricted reader. A reader restricted to projects (or their key)
     * sees who reaches one of their projects: unrestricted members, members assigned to one of
     * theirs, and themselves (review R4 finding 4: the roster is not an org-wide channel).
     */
    async list(ctx: RequestContext): Promise<MemberView[]> {
      const org = requireOrg(ctx);
      const scope = org.projectIds;
      const self = ctx.actor.type === 'user' ? ctx.actor.userId : ctx.actor.type === 'api_key' ? ctx.actor.createdBy : null;
      const reach =
        scope === null
          ? sql`true`
          : sql`(not m.restricted or m.user_id = ${self} or exists (select 1 from project_access pa
                 where pa.org_id = m.org_id and pa.user_id = m.user_id and pa.project_id = any(${[...scope]}::uuid[])))`;
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const found = await rows<SealedPerson & {
          user_id: string; role: RoleKey; custom_role_id: string | null;
          restricted: boolean; created_at: Date; project_ids: string[] | null;
        }>(
          tx,
          sql`select m.user_id, u.id, u.email_sealed, u.name_sealed, m.role, m.custom_role_id, m.restricted, m.created_at,
                     (select array_agg(pa.project_id::text order by pa.project_id) from project_access pa
                       where pa.org_id = m.org_id and pa.user_id = m.user_id) as project_ids
              from memberships m join users u on u.id = m.user_id
              where m.org_id = ${org.orgId} and ${reach}`,
        );
        const list = (await withPeople(deps.sealer, tx, found)).sort(byEmail);
        return list.map((m) => ({
          userId: m.user_id,
          email: m.email,
          name: m.name,
          role: m.role,
          customRoleId: m.custom_role_id,
          restricted: isRestricted(m.role, m.restricted),
          // RLS on project_access already hides assignments outside a restricted caller's scope.
          projectIds: m.project_ids ?? [],
          joinedAt: m.created_at.toISOString(),
        }));
      });
    },

    async changeRole(ctx: RequestContext, userId: string, a: RoleAssignment): Promise<void> {
      const org = requireOrg(ctx);
      await assertCanActOn(deps.db, org, userId);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        // Acting on someone needs every permission they hold now, and every one they would get.
        const target = await lockForAction(tx, org, userId, 'change');
        const granted = await grantedBy(tx, a);
        assertCanGrant(org, a.role, granted);
        if (target.role === 'owner' && a.role !== 'owner') await assertNotLastOwner(tx, org.orgId, userId);
        const restricted = isRestricted(a.role, a.restricted ?? target.restricted) && a.role !== 'owner';
        // Covers both ways in: a role with org-wide permissions given to a restricted member, and
        // restricting the holder of one (review R4 finding 4).
        assertRestrictable(granted, restricted);
        if (org.projectIds !== null) {
          const assigned = await rows<{ project_id: string }>(
            tx,
            sql`select project_id::text from project_access where org_id = ${org.orgId} and user_id = ${userId}`,
          );
          assertCanScope(org, { restricted, projectIds: assigned.map((p) => p.project_id) });
        }
        await exec(
          tx,
          sql`update memberships set role = ${a.role}, custom_role_id = ${a.role === 'custom' ? (a.customRoleId ?? null) : null},
                restricted = ${restricted} where org_id = ${org.orgId} and user_id = ${userId}`,
        );
        await deps.onPrivilegeChange(tx, userId);
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'member.role_changed',
          target: { type: 'user', id: userId },
          details: { from: target.role, to: a.role, customRoleId: a.customRoleId ?? null, restricted },
        });
      });
    },

    async remove(ctx: RequestContext, userId: string): Promise<void> {
      const org = requireOrg(ctx);
      await assertCanActOn(deps.db, org, userId);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const target = await lockForAction(tx, org, userId, 'remove');
        if (target.role === 'owner') await assertNotLastOwner(tx, org.orgId, userId);
        await exec(tx, sql`delete from memberships where org_id = ${org.orgId} and user_id = ${userId}`);
        await deps.onPrivilegeChange(tx, userId);
        await deps.audit.append(tx, org.orgId, ctx, { action: 'member.removed', target: { type: 'user', id: userId }, details: { role: target.role } });
      });
    },

    async leave(ctx: RequestContext): Promise<void> {
      const org = requireOrg(ctx);
      if (ctx.actor.type !== 'user') throw new AppError('unauthenticated');
      const userId = ctx.actor.userId;
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        await lockOwners(tx, org.orgId);
        const target = await lockTarget(tx, org.orgId, userId);
        if (target.role === 'owner') await assertNotLastOwner(tx, org.orgId, userId);
        await exec(tx, sql`delete from memberships where org_id = ${org.orgId} and user_id = ${userId}`);
        await deps.onPrivilegeChange(tx, userId);
        await deps.audit.append(tx, org.orgId, ctx, { action: 'member.left', target: { type: 'user', id: userId } });
      });
    },
  };
}

export type MemberService = ReturnType<typeof createMemberService>;
