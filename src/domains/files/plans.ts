import { sql } from 'kysely';
import { one, type Database } from '../../db/database.js';
import type { RequestContext } from '../../kernel/context.js';
import type { AuditWriter } from '../audit/index.js';

/**
 * An org's plan (migration 041), which sets its upload limits. The operator sets it (`palisade
 * plan`, after billing says so); the org cannot: its owners would simply pick the largest.
 */
export async function setOrgPlan(deps: { db: Database; audit: AuditWriter }, ctx: RequestContext, orgId: string, plan: string): Promise<{ from: string } | null> {
  return deps.db.withTenant({ orgId, projectIds: null }, async (tx) => {
    const before = await one<{ plan: string }>(tx, sql`select plan from org_settings where org_id = ${orgId} for update`);
    if (!before) return null;
    await one(tx, sql`update org_settings set plan = ${plan}, updated_at = now() where org_id = ${orgId} returning org_id`);
    await deps.audit.append(tx, orgId, ctx, { action: 'org.plan_changed', target: { type: 'org', id: orgId }, details: { from: before.plan, to: plan } });
    return { from: before.plan };
  });
}
