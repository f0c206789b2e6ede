import { sql } from 'kysely';
import { exec, one, type Tx } from '../../db/database.js';
import type { RequestContext } from '../../kernel/context.js';
import { userActorOf } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { bindingOf, requireOrg } from './access.js';
import type { TenancyDeps } from './deps.js';
import type { OrgView } from './responses.js';

const DAY_MS = 86_400_000;

export interface DeletionDeps extends Pick<TenancyDeps, 'db' | 'audit' | 'clock'> {
  /** Days an owner can restore the org before its data keys are destroyed (PALISADE_ORG_DELETION_GRACE_DAYS). */
  graceDays: number;
}

interface DeletionRow {
  slug: string;
  deletion_requested_at: Date | null;
  purge_after: Date | null;
}

async function lockedState(tx: Tx, orgId: string): Promise<DeletionRow> {
  const row = await one<DeletionRow>(
    tx,
    sql`select slug, deletion_requested_at, purge_after from organizations where org_id = ${orgId} and shredded_at is null for update`,
  );
  if (!row) throw new AppError('not_found');
  return row;
}

/**
 * Deleting an org is scheduling its crypto-shredding: at once every session of its members stops
 * reaching it and every API key is revoked, and the org answers only its status and the owner's
 * restore; after the grace period the data-key job destroys its data keys (keys/shredding.ts).
 */
export function createDeletionService(deps: DeletionDeps) {
  const { db, audit, clock } = deps;
  return {
    async schedule(ctx: RequestContext, confirm: string): Promise<NonNullable<OrgView['deletion']>> {
      const org = requireOrg(ctx);
      const by = userActorOf(ctx).userId;
      return db.withTenant(bindingOf(ctx), async (tx) => {
        const state = await lockedState(tx, org.orgId);
        // The slug, typed: a click (or a replayed request for another org) cannot delete one.
        if (confirm !== state.slug) {
          throw new AppError('validation_failed', 'to confirm, type the organization\u2019s slug exactly', [{ path: 'confirm', message: 'does not match the organization\u2019s slug' }]);
        }
        if (state.purge_after) throw new AppError('conflict', `the organization is already scheduled for deletion on ${state.purge_after.toISOString()}`);
        const now = clock.now();
        const purgeAfter = new Date(now.getTime() + deps.graceDays * DAY_MS);
        await exec(tx, sql`update organizations set deletion_requested_at = ${now.toISOString()}, deletion_requested_by = ${by},
                             purge_after = ${purgeAfter.toISOString()} where org_id = ${org.orgId}`);
        // Sessions created until now no longer reach the org (a member signs in again to see it,
        // and an owner to restore it); keys stay revoked after a restore: new ones are made.
        const members = await exec(tx, sql`update memberships set sessions_revoked_at = ${now.toISOString()} where org_id = ${org.orgId}`);
        const keys = await exec(tx, sql`update api_keys set revoked_at = ${now.toISOString()}, revoked_by = ${by}
                                        where org_id = ${org.orgId} and revoked_at is null`);
        // The data-key job shreds the org when the grace period ends (sooner if it already had work due).
        await exec(tx, sql`insert into data_key_due (org_id, due_at) values (${org.orgId}, ${purgeAfter.toISOString()})
                           on conflict (org_id) do update set due_at = least(data_key_due.due_at, excluded.due_at)`);
        await audit.append(tx, org.orgId, ctx, {
          action: 'org.deletion_scheduled',
          target: { type: 'org', id: org.orgId },
          details: { purgeAfter: purgeAfter.toISOString(), graceDays: deps.graceDays, membersSignedOut: members, apiKeysRevoked: keys },
        });
        return { requestedAt: now.toISOString(), purgeAfter: purgeAfter.toISOString() };
      });
    },

    async restore(ctx: RequestContext): Promise<void> {
      const org = requireOrg(ctx);
      await db.withTenant(bindingOf(ctx), async (tx) => {
        const state = await lockedState(tx, org.orgId);
        if (!state.purge_after || !state.deletion_requested_at) throw new AppError('conflict', 'the organization is not scheduled for deletion');
        // The job may not have come round yet: past the date, the org is gone whatever the rows say.
        if (state.purge_after.getTime() <= clock.now().getTime()) throw new AppError('conflict', 'the grace period has ended: the organization is being shredded');
        await exec(tx, sql`update organizations set deletion_requested_at = null, deletion_requested_by = null, purge_after = null where org_id = ${org.orgId}`);
        await audit.append(tx, org.orgId, ctx, {
          action: 'org.restored',
          target: { type: 'org', id: org.orgId },
          details: { deletionRequestedAt: state.deletion_requested_at.toISOString() },
        });
      });
    },
  };
}

export type DeletionService = ReturnType<typeof createDeletionService>;
