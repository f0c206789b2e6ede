import { sql } from 'kysely';
import { newId } from '../../crypto/index.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import {
  ALL_PERMISSIONS, API_KEY_PERMISSIONS, BROWSER_SAFE_PERMISSIONS, BUILTIN_ROLE_PERMISSIONS, BUILTIN_ROLES, isOrgWide, orgWideIn, PERMISSIONS,
  PermissionSet, PROJECT_KEY_PERMISSIONS, withImplied, type Permission,
} from '../../kernel/permissions.js';
import { exec, one, rows, writeUnlessTaken, type Tx } from '../../db/database.js';
import { assertCanActOn, bindingOf, requireOrg } from './access.js';
import type { OrgAccess } from '../../kernel/context.js';
import type { Database } from '../../db/database.js';
import type { PermissionCatalogue } from './responses.js';

/**
 * The kernel's permission catalogue as GET /api/permissions publishes it: every list read from
 * kernel/permissions.ts, none copied. Owner-only: in the owner role but not the admin one.
 */
export function permissionCatalogue(): PermissionCatalogue {
  const admin = new Set<Permission>(BUILTIN_ROLE_PERMISSIONS.admin);
  const owner = new Set<Permission>(BUILTIN_ROLE_PERMISSIONS.owner);
  return {
    permissions: ALL_PERMISSIONS.map((name) => ({
      name,
      description: PERMISSIONS[name],
      orgWide: isOrgWide(name),
      apiKey: API_KEY_PERMISSIONS.includes(name),
      browserSafe: BROWSER_SAFE_PERMISSIONS.includes(name),
      projectKey: PROJECT_KEY_PERMISSIONS.includes(name),
      ownerOnly: owner.has(name) && !admin.has(name),
    })),
    builtinRoles: BUILTIN_ROLES.map((name) => ({ name, permissions: [...BUILTIN_ROLE_PERMISSIONS[name]] })),
  };
}

/** Editing a role edits its holders: a restricted editor must be able to act on each of them. */
async function assertCanActOnHolders(db: Database, actor: OrgAccess, roleId: string): Promise<void> {
  if (actor.projectIds === null) return;
  const holders = await db.withTenant({ orgId: actor.orgId }, (tx) =>
    rows<{ user_id: string }>(tx, sql`select user_id from memberships where org_id = ${actor.orgId} and custom_role_id = ${roleId}`),
  );
  for (const h of holders) await assertCanActOn(db, actor, h.user_id);
}
import type { TenancyDeps } from './deps.js';
import type { RoleView } from './responses.js';

/**
 * A member restricted to projects holds no org-wide permission (review R4 finding 4): a custom
 * role that a restricted member holds, or that a pending restricted invitation grants, cannot
 * be given one. Runs under the role's row lock; assignments take it in share mode (members.ts
 * grantedBy), so an assignment racing the edit is either counted here or reads the edited role.
 */
async function assertNoRestrictedHolders(tx: Tx, roleId: string, wide: readonly Permission[]): Promise<void> {
  const r = await one<{ members: number; invitations: number }>(
    tx,
    sql`select (select count(*)::int from memberships where custom_role_id = ${roleId} and restricted) as members,
               (select count(*)::int from invitations where custom_role_id = ${roleId} and restricted
                  and accepted_at is null and revoked_at is null and expires_at > now()) as invitations`,
  );
  const members = r?.members ?? 0;
  const invitations = r?.invitations ?? 0;
  if (members + invitations === 0) return;
  const holders = [members > 0 ? `${members} member(s) restricted to projects` : '', invitations > 0 ? `${invitations} pending restricted invitation(s)` : '']
    .filter(Boolean)
    .join(' and ');
  throw new AppError(
    'conflict',
    `the role is held by ${holders}, who cannot hold org-wide permissions: ${wide.join(', ')}; ` +
      'lift their restriction or give them another role first',
  );
}

interface CustomRow {
  id: string;
  name: string;
  description: string;
  permissions: string[];
}

function customView(r: CustomRow): RoleView {
  return { id: r.id, name: r.name, description: r.description, builtin: false, permissions: PermissionSet.of(r.permissions).list() };
}

const ROLE_NAME_TAKEN = 'a role with that name exists';

export function createRoleService(deps: TenancyDeps) {
  return {
    async list(ctx: RequestContext): Promise<RoleView[]> {
      const org = requireOrg(ctx);
      const builtins: RoleView[] = BUILTIN_ROLES.map((r) => ({
        id: r,
        name: r,
        description: `Built-in ${r.replace('_', ' ')} role`,
        builtin: true,
        permissions: [...BUILTIN_ROLE_PERMISSIONS[r]],
      }));
      const custom = await deps.db.withTenant(bindingOf(ctx), (tx) =>
        rows<CustomRow>(tx, sql`select id, name, description, permissions from custom_roles where org_id = ${org.orgId} order by name`),
      );
      return [...builtins, ...custom.map(customView)];
    },

    async create(ctx: RequestContext, input: { name: string; description?: string | undefined; permissions: Permission[] }): Promise<RoleView> {
      const org = requireOrg(ctx);
      // Membership implies seeing the org (and leaving it): every role carries org:read.
      const perms = withImplied(input.permissions);
      if (!org.permissions.covers(perms)) throw new AppError('privilege_escalation', 'the role holds permissions you do not have');
      const id = newId();
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const inserted = await writeUnlessTaken(
          tx,
          sql`insert into custom_roles (org_id, id, name, description, permissions)
              values (${org.orgId}, ${id}, ${input.name}, ${input.description ?? ''}, ${perms.list()}::text[])`,
        );
        if (!inserted) throw new AppError('conflict', ROLE_NAME_TAKEN);
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'role.created',
          target: { type: 'role', id },
          details: { name: input.name, permissions: perms.list() },
        });
        return customView({ id, name: input.name, description: input.description ?? '', permissions: perms.list() });
      });
    },

    async update(
      ctx: RequestContext,
      id: string,
      input: { name?: string | undefined; description?: string | undefined; permissions?: Permission[] | undefined },
    ): Promise<RoleView> {
      const org = requireOrg(ctx);
      await assertCanActOnHolders(deps.db, org, id);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const cur = await one<CustomRow>(tx, sql`select id, name, description, permissions from custom_roles where id = ${id} for update`);
        if (!cur) throw new AppError('not_found');
        // Changing a role changes what its holders can do: the editor needs its old and new rights.
        if (!org.permissions.covers(PermissionSet.of(cur.permissions))) {
          throw new AppError('privilege_escalation', 'the role holds permissions you do not have');
        }
        // A rename keeps the stored set as it is: implying on it would widen what holders have, unseen.
        const next = input.permissions ? withImplied(input.permissions) : PermissionSet.of(cur.permissions);
        if (!org.permissions.covers(next)) throw new AppError('privilege_escalation', 'the role holds permissions you do not have');
        const wide = input.permissions ? orgWideIn(next) : [];
        if (wide.length > 0) await assertNoRestrictedHolders(tx, id, wide);
        const name = input.name ?? cur.name;
        const description = input.description ?? cur.description;
        const updated = await writeUnlessTaken(
          tx,
          sql`update custom_roles set name = ${name}, description = ${description}, permissions = ${next.list()}::text[],
                updated_at = now() where id = ${id}`,
        );
        if (!updated) throw new AppError('conflict', ROLE_NAME_TAKEN);
        if (input.permissions) {
          const holders = await rows<{ user_id: string }>(tx, sql`select user_id from memberships where custom_role_id = ${id} order by user_id`);
          for (const h of holders) await deps.onPrivilegeChange(tx, h.user_id);
        }
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'role.updated',
          target: { type: 'role', id },
          details: { name, permissions: next.list() },
        });
        return customView({ id, name, description, permissions: next.list() });
      });
    },

    async remove(ctx: RequestContext, id: string): Promise<void> {
      const org = requireOrg(ctx);
      await assertCanActOnHolders(deps.db, org, id);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const cur = await one<CustomRow>(tx, sql`select id, name, description, permissions from custom_roles where id = ${id} for update`);
        if (!cur) throw new AppError('not_found');
        if (!org.permissions.covers(PermissionSet.of(cur.permissions))) {
          throw new AppError('privilege_escalation', 'the role holds permissions you do not have');
        }
        const used = await one(tx, sql`select 1 as x from memberships where custom_role_id = ${id} limit 1`);
        if (used) throw new AppError('conflict', 'the role is assigned to members');
        await exec(tx, sql`delete from invitations where custom_role_id = ${id} and accepted_at is null`);
        await exec(tx, sql`delete from custom_roles where id = ${id}`);
        await deps.audit.append(tx, org.orgId, ctx, { action: 'role.deleted', target: { type: 'role', id }, details: { name: cur.name } });
      });
    },
  };
}

export type RoleService = ReturnType<typeof createRoleService>;
