import { sql } from 'kysely';
import { byEmail, withPeople, type SealedPerson } from '../identity/people.js';
import { newId } from '../../crypto/index.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { exec, one, rows } from '../../db/database.js';
import { assertCanActOn, assertCanGrant, bindingOf, isRestricted, requireOrg, resolveAccess, type RoleKey } from './access.js';
import type { OrgAccess } from '../../kernel/context.js';
import type { Database } from '../../db/database.js';

/** Changing a member's reach needs every permission they hold (as changing their role does). */
async function assertCoversMember(db: Database, actor: OrgAccess, userId: string): Promise<void> {
  const target = await resolveAccess(db, actor.orgId, userId);
  if (target) assertCanGrant(actor, target.access.role as RoleKey, target.access.permissions);
}
import type { TenancyDeps } from './deps.js';
import type { ProjectMemberView, ProjectView } from './responses.js';

interface ProjectRow {
  id: string;
  name: string;
  created_at: Date;
}

const view = (r: ProjectRow): ProjectView => ({ id: r.id, name: r.name, createdAt: r.created_at.toISOString() });

/**
 * Projects. Restricted members are held to their assigned projects three times over: the list
 * filters on the scope, the pipeline refuses unassigned project ids, and RLS binds the scope.
 */
export function createProjectService(deps: TenancyDeps) {
  return {
    async list(ctx: RequestContext): Promise<ProjectView[]> {
      const org = requireOrg(ctx);
      const scope = org.projectIds;
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const list = await rows<ProjectRow>(
          tx,
          scope === null
            ? sql`select id, name, created_at from projects where org_id = ${org.orgId} order by name, id`
            : sql`select id, name, created_at from projects where org_id = ${org.orgId} and id = any(${[...scope]}::uuid[]) order by name, id`,
        );
        return list.map(view);
      });
    },

    async get(ctx: RequestContext, id: string): Promise<ProjectView> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await one<ProjectRow>(tx, sql`select id, name, created_at from projects where org_id = ${org.orgId} and id = ${id}`);
        if (!r) throw new AppError('not_found');
        return view(r);
      });
    },

    async create(ctx: RequestContext, name: string): Promise<ProjectView> {
      const org = requireOrg(ctx);
      const id = newId();
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await one<ProjectRow>(
          tx,
          sql`insert into projects (org_id, id, name) values (${org.orgId}, ${id}, ${name}) returning id, name, created_at`,
        );
        await deps.audit.append(tx, org.orgId, ctx, { action: 'project.created', target: { type: 'project', id }, details: { name } });
        return view(r as ProjectRow);
      });
    },

    async rename(ctx: RequestContext, id: string, name: string): Promise<ProjectView> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await one<ProjectRow>(
          tx,
          sql`update projects set name = ${name} where org_id = ${org.orgId} and id = ${id} returning id, name, created_at`,
        );
        if (!r) throw new AppError('not_found');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'project.updated', target: { type: 'project', id }, details: { name } });
        return view(r);
      });
    },

    async remove(ctx: RequestContext, id: string): Promise<void> {
      const org = requireOrg(ctx);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const found = await one(tx, sql`select 1 from projects where org_id = ${org.orgId} and id = ${id} for update`);
        if (!found) throw new AppError('not_found');
        await deps.onProjectDeleted?.(tx, ctx, org.orgId, id);
        const n = await exec(tx, sql`delete from projects where org_id = ${org.orgId} and id = ${id}`);
        if (n !== 1) throw new AppError('not_found');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'project.deleted', target: { type: 'project', id } });
      });
    },

    async listAccess(ctx: RequestContext, projectId: string): Promise<ProjectMemberView[]> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const p = await one(tx, sql`select 1 as x from projects where org_id = ${org.orgId} and id = ${projectId}`);
        if (!p) throw new AppError('not_found');
        const list = await rows<SealedPerson & { user_id: string }>(
          tx,
          sql`select pa.user_id, u.id, u.email_sealed, u.name_sealed from project_access pa join users u on u.id = pa.user_id
              where pa.org_id = ${org.orgId} and pa.project_id = ${projectId}`,
        );
        return (await withPeople(deps.sealer, tx, list)).sort(byEmail).map((r) => ({ userId: r.user_id, email: r.email }));
      });
    },

    async assign(ctx: RequestContext, projectId: string, userId: string): Promise<void> {
      const org = requireOrg(ctx);
      await assertCanActOn(deps.db, org, userId);
      await assertCoversMember(deps.db, org, userId);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const p = await one(tx, sql`select 1 as x from projects where org_id = ${org.orgId} and id = ${projectId}`);
        const m = await one<{ role: RoleKey; restricted: boolean }>(
          tx,
          sql`select role, restricted from memberships where org_id = ${org.orgId} and user_id = ${userId} for update`,
        );
        if (!p || !m) throw new AppError('not_found');
        if (!isRestricted(m.role, m.restricted)) throw new AppError('conflict', 'the member is not restricted to projects');
        await exec(
          tx,
          sql`insert into project_access (org_id, project_id, user_id) values (${org.orgId}, ${projectId}, ${userId}) on conflict do nothing`,
        );
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'project.member_assigned',
          target: { type: 'project', id: projectId },
          details: { userId },
        });
      });
    },

    async unassign(ctx: RequestContext, projectId: string, userId: string): Promise<void> {
      const org = requireOrg(ctx);
      await assertCanActOn(deps.db, org, userId);
      await assertCoversMember(deps.db, org, userId);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const n = await exec(
          tx,
          sql`delete from project_access where org_id = ${org.orgId} and project_id = ${projectId} and user_id = ${userId}`,
        );
        if (n !== 1) throw new AppError('not_found');
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'project.member_unassigned',
          target: { type: 'project', id: projectId },
          details: { userId },
        });
      });
    },
  };
}

export type ProjectService = ReturnType<typeof createProjectService>;
