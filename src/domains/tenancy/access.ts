import { sql } from 'kysely';
import type { OrgAccess } from '../../kernel/context.js';
import { AppError, InvariantError } from '../../kernel/errors.js';
import {
  ALWAYS_RESTRICTED_ROLES,
  BUILTIN_ROLE_PERMISSIONS,
  isBuiltinRole,
  orgWideIn,
  PermissionSet,
  withoutOrgWide,
  withoutUnbacked,
  type BuiltinRole,
} from '../../kernel/permissions.js';
import { one, type Database, type Tx } from '../../db/database.js';
export { bindingOf, requireOrg } from '../../db/binding.js';

export type RoleKey = BuiltinRole | 'custom';

export interface MembershipRow {
  role: RoleKey;
  custom_role_id: string | null;
  custom_name: string | null;
  custom_permissions: string[] | null;
  restricted: boolean;
  project_ids: string[] | null;
  session_idle_seconds: number | null;
  session_absolute_seconds: number | null;
  sessions_revoked_at: Date | null;
  mfa_enforced_from: Date | null;
  admin_ip_allowlist: string[] | null;
  /** Set while the org is scheduled for deletion (migration 031). */
  purge_after: Date | null;
}

export function permissionsOf(role: RoleKey, customPermissions: readonly string[] | null): PermissionSet {
  if (role === 'custom') return withoutUnbacked(PermissionSet.of(customPermissions ?? []));
  if (!isBuiltinRole(role)) throw new InvariantError(`unknown role ${String(role)}`);
  return PermissionSet.of(BUILTIN_ROLE_PERMISSIONS[role]);
}

export function isRestricted(role: RoleKey, restricted: boolean): boolean {
  return restricted || (ALWAYS_RESTRICTED_ROLES as readonly string[]).includes(role);
}

/**
 * What a member holds at request time: their role's permissions, without the org-wide ones when
 * they are restricted to projects (ORG_WIDE_PERMISSIONS). Assignments that would grant those are
 * refused (assertRestrictable); this also holds for rows written before that rule, or by hand.
 */
export function effectivePermissionsOf(role: RoleKey, customPermissions: readonly string[] | null, restricted: boolean): PermissionSet {
  const granted = permissionsOf(role, customPermissions);
  return isRestricted(role, restricted) ? withoutOrgWide(granted) : granted;
}

/**
 * A member restricted to projects holds no org-wide permission (review R4 finding 4): a role
 * that grants one is refused for a restricted member, naming what reaches beyond the projects,
 * rather than silently holding less than it says.
 */
export function assertRestrictable(granted: PermissionSet, restricted: boolean): void {
  if (!restricted) return;
  const wide = orgWideIn(granted);
  if (wide.length > 0) {
    throw new AppError(
      'validation_failed',
      `a member restricted to projects cannot hold org-wide permissions, and this role holds ${wide.join(', ')}: ` +
        'choose a role without them, or leave the member unrestricted',
      [{ path: 'restricted', message: `the role holds org-wide permissions: ${wide.join(', ')}` }],
    );
  }
}

export interface OrgPolicy {
  sessionIdleSeconds: number | null;
  sessionAbsoluteSeconds: number | null;
  /** Sessions of this member created before this instant no longer reach the org. */
  sessionsRevokedAt: Date | null;
  /** From this instant a member needs a second factor (and a session proven with one). */
  mfaEnforcedFrom: Date | null;
}

// The statement lives in migration 006 (palisade_membership): a PL/pgSQL function keeps its
// plan per connection, and session verification joins the same function.
const membershipQuery = (orgId: string, userId: string) => sql<MembershipRow>`select * from palisade_membership(${orgId}::uuid, ${userId}::uuid)`;

export async function loadMembership(tx: Tx, orgId: string, userId: string): Promise<MembershipRow | undefined> {
  return one(tx, membershipQuery(orgId, userId));
}

export function accessFrom(orgId: string, m: MembershipRow): OrgAccess {
  return {
    orgId,
    role: m.role,
    roleLabel: m.role === 'custom' ? `custom:${m.custom_name ?? ''}` : m.role,
    permissions: effectivePermissionsOf(m.role, m.custom_permissions, m.restricted),
    projectIds: isRestricted(m.role, m.restricted) ? (m.project_ids ?? []) : null,
    adminIpAllowlist: m.admin_ip_allowlist ?? [],
    purgeAfter: m.purge_after ?? null,
  };
}

export interface Standing {
  access: OrgAccess;
  policy: OrgPolicy;
}

export function standingFrom(orgId: string, m: MembershipRow): Standing {
  return {
    access: accessFrom(orgId, m),
    policy: {
      sessionIdleSeconds: m.session_idle_seconds,
      sessionAbsoluteSeconds: m.session_absolute_seconds,
      sessionsRevokedAt: m.sessions_revoked_at,
      mfaEnforcedFrom: m.mfa_enforced_from,
    },
  };
}

/** Derives a member's standing from current roles (session verification joins the same query). */
export async function resolveAccess(db: Database, orgId: string, userId: string): Promise<Standing | null> {
  // Resolution reads every assignment of the member (the scope it computes is not bound yet).
  const m = await db.withTenant({ orgId, userId, projectIds: null }, (tx) => loadMembership(tx, orgId, userId));
  return m ? standingFrom(orgId, m) : null;
}

/**
 * Nobody grants a scope they lack: a member restricted to projects grants only restricted
 * access, to projects they are assigned to (else a restricted admin could lift their own
 * restriction, or hand out rights on projects they cannot see).
 */
export function assertCanScope(actor: OrgAccess, grant: { restricted: boolean; projectIds: readonly string[] }): void {
  if (actor.projectIds === null) return;
  if (!grant.restricted) throw new AppError('privilege_escalation', 'you are restricted to projects: you can grant only restricted access');
  const mine = new Set(actor.projectIds);
  if (grant.projectIds.some((p) => !mine.has(p))) {
    throw new AppError('privilege_escalation', 'you can grant access only to projects you are assigned to');
  }
}

/**
 * A member restricted to projects acts only on members restricted within those projects: not
 * on unrestricted members (demote, remove, sign out, re-scope), not on members of projects they
 * cannot see. The target's scope is read in full, outside the actor's own binding.
 */
export async function assertCanActOn(db: Database, actor: OrgAccess, userId: string): Promise<void> {
  if (actor.projectIds === null) return;
  const target = await resolveAccess(db, actor.orgId, userId);
  if (!target) return; // not a member: the caller answers 404
  assertWithinScope(actor, target.access);
}

function assertWithinScope(actor: OrgAccess, target: OrgAccess): void {
  if (actor.projectIds === null) return;
  const mine = new Set(actor.projectIds);
  if (target.projectIds === null || target.projectIds.some((p) => !mine.has(p))) {
    throw new AppError('privilege_escalation', 'you are restricted to projects: you can act only on members restricted within them');
  }
}

/**
 * The one rule for acting on another member's credentials: their sessions, their API keys, and
 * any factor, lock or token of theirs a route reaches. Ending someone's credentials is acting on
 * them, so it needs what acting on them needs: within the actor's project scope
 * (assertCanActOn), an owner's only with owners:manage, anyone's only with every permission they
 * hold now (as for their role). Otherwise an admin could not sign an owner out, yet could cut
 * the owner's integrations by revoking their keys. One's own credentials are always one's own.
 * The holder is read in full, outside the actor's binding. Returns false when the holder is not
 * a member of the org (the caller answers 404, or goes on: a key dies with its creator's membership).
 */
export async function assertCanActOnCredentials(db: Database, actor: OrgAccess, actorUserId: string, holderId: string, verb: string): Promise<boolean> {
  if (holderId === actorUserId) return true;
  const holder = await resolveAccess(db, actor.orgId, holderId);
  if (!holder) return false;
  assertWithinScope(actor, holder.access);
  assertManages(actor, holder.access.role, holder.access.permissions, verb);
  return true;
}

/**
 * Acting on a member (role change, removal; their credentials through assertCanActOnCredentials)
 * needs every permission they hold now; an owner is acted on only by holders of owners:manage.
 */
export function assertCanManage(actor: OrgAccess, target: { role: RoleKey; customPermissions: readonly string[] | null }, verb: string): void {
  assertManages(actor, target.role, permissionsOf(target.role, target.customPermissions), verb);
}

function assertManages(actor: OrgAccess, role: string, held: PermissionSet, verb: string): void {
  if (role === 'owner' && !actor.permissions.has('owners:manage')) {
    throw new AppError('privilege_escalation', `only owners can ${verb} an owner: it needs owners:manage`);
  }
  const missing = held.list().filter((p) => !actor.permissions.has(p));
  if (missing.length > 0) {
    throw new AppError('privilege_escalation', `to ${verb} this member you need every permission they hold; you lack ${missing.join(', ')}`);
  }
}

/** Nobody grants a permission they lack; the owner role is granted only by holders of owners:manage. */
export function assertCanGrant(actor: OrgAccess, role: RoleKey, granted: PermissionSet): void {
  if (role === 'owner' && !actor.permissions.has('owners:manage')) {
    throw new AppError('privilege_escalation', 'only owners can grant the owner role');
  }
  if (!actor.permissions.covers(granted)) {
    throw new AppError('privilege_escalation', 'the role holds permissions you do not have');
  }
}
