import { sql } from 'kysely';
import { newId } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { exec, one, rows, type Database } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import { bindingOf, requireOrg } from '../tenancy/index.js';
import type { AssetView } from './responses.js';

/** Assets: the project-scoped resource a product built on Palisade stores (hosts, accounts, repos…). */

interface AssetRow {
  id: string;
  project_id: string;
  name: string;
  kind: string;
  created_at: Date;
}

const view = (r: AssetRow): AssetView => ({ id: r.id, projectId: r.project_id, name: r.name, kind: r.kind, createdAt: r.created_at.toISOString() });

export function createAssetService(deps: { db: Database; audit: AuditWriter; clock: Clock }) {
  return {
    async list(ctx: RequestContext, projectId: string, limit: number): Promise<AssetView[]> {
      const org = requireOrg(ctx);
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const list = await rows<AssetRow>(
          tx,
          sql`select id, project_id, name, kind, created_at from assets
              where org_id = ${org.orgId} and project_id = ${projectId} order by created_at desc, id limit ${limit}`,
        );
        if (list.length === 0) {
          const p = await one(tx, sql`select 1 as x from projects where org_id = ${org.orgId} and id = ${projectId}`);
          if (!p) throw new AppError('not_found');
        }
        return list.map(view);
      });
    },

    async create(ctx: RequestContext, projectId: string, input: { name: string; kind: string }): Promise<AssetView> {
      const org = requireOrg(ctx);
      const id = newId();
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const p = await one(tx, sql`select 1 as x from projects where org_id = ${org.orgId} and id = ${projectId}`);
        if (!p) throw new AppError('not_found');
        const r = await one<AssetRow>(
          tx,
          sql`insert into assets (org_id, project_id, id, name, kind) values (${org.orgId}, ${projectId}, ${id}, ${input.name}, ${input.kind})
              returning id, project_id, name, kind, created_at`,
        );
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'asset.created',
          target: { type: 'asset', id },
          details: { projectId, kind: input.kind },
        });
        return view(r as AssetRow);
      });
    },

    async remove(ctx: RequestContext, projectId: string, id: string): Promise<void> {
      const org = requireOrg(ctx);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const n = await exec(tx, sql`delete from assets where org_id = ${org.orgId} and project_id = ${projectId} and id = ${id}`);
        if (n !== 1) throw new AppError('not_found');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'asset.deleted', target: { type: 'asset', id }, details: { projectId } });
      });
    },
  };
}

export type AssetService = ReturnType<typeof createAssetService>;
