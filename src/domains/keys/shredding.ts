import { sql } from 'kysely';
import { exec, one, rows, type Database } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { systemContext } from '../../kernel/context.js';
import type { AuditWriter } from '../audit/index.js';
import { lockOrgKeys } from './data-key-rotation.js';
import type { Sealer } from './sealer.js';

export interface ShredDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
}

export interface Shredded {
  keysDestroyed: number;
  membersRemoved: number;
}

/**
 * Crypto-shredding of an org whose deletion grace period has ended (tenancy/deletion.ts
 * schedules it). One transaction destroys the material of every data key the org has (so no
 * sealed value of it, in these tables or in any backup of them, opens with a key that remains),
 * removes every way into the org (memberships, project assignments, invitations, verified domains,
 * SSO connections and enforcement), and deletes what it kept in clear (projects, assets, custom
 * roles, domain claims, webhook endpoints with their delivery log). The org row,
 * its audit chain and the key rows (without material) stay: the chain still verifies, and its
 * last event says what was destroyed.
 */
export function createShredder(deps: ShredDeps) {
  const { db, audit, clock } = deps;
  const now = () => clock.now().toISOString();
  return {
    /** Shreds the org if its grace period has ended and it is not shredded yet. Null: nothing was due. */
    async shredIfDue(orgId: string): Promise<Shredded | null> {
      const out = await db.withTenant({ orgId, projectIds: null }, async (tx) => {
        const due = await one<{ purge_after: Date }>(
          tx,
          sql`select purge_after from organizations where org_id = ${orgId} and purge_after <= ${now()} and shredded_at is null for update`,
        );
        if (!due) return null;
        await lockOrgKeys(tx, orgId);
        await exec(tx, sql`update org_key_rotations set status = 'superseded', finished_at = ${now()} where org_id = ${orgId} and status = 'running'`);
        // Leaving service needs a retirement and a destruction date (the keys' guard), given here as now.
        const destroyed = await rows<{ id: string }>(
          tx,
          sql`update org_keys set active = false, retired_at = coalesce(retired_at, ${now()}), destroy_after = ${now()},
                 wrapped = null, kek_id = null, destroyed_at = ${now()}
              where org_id = ${orgId} and destroyed_at is null returning id`,
        );
        await exec(tx, sql`delete from project_access where org_id = ${orgId}`);
        await exec(tx, sql`delete from invitations where org_id = ${orgId}`);
        const members = await exec(tx, sql`delete from memberships where org_id = ${orgId}`);
        await exec(tx, sql`delete from verified_domains where org_id = ${orgId}`);
        // With its SAML ACS routes (cascade): an IdP's post can no longer reach the org.
        await exec(tx, sql`delete from sso_connections where org_id = ${orgId}`);
        await exec(tx, sql`update sso_enforcement set enforced_since = null where org_id = ${orgId}`);
        await exec(tx, sql`update inbound_sources set deleted_at = ${now()}, secret_sealed = '' where org_id = ${orgId} and deleted_at is null`);
        await exec(tx, sql`update integration_credentials set deleted_at = ${now()}, secret_sealed = '' where org_id = ${orgId} and deleted_at is null`);
        // What the org kept in clear goes too: a backup taken later holds none of it. Endpoints take
        // their deliveries (payloads: who was invited, what changed) and attempts with them (cascade).
        await exec(tx, sql`delete from webhook_endpoints where org_id = ${orgId}`);
        await exec(tx, sql`delete from assets where org_id = ${orgId}`);
        await exec(tx, sql`delete from projects where org_id = ${orgId}`);
        await exec(tx, sql`delete from custom_roles where org_id = ${orgId}`);
        await exec(tx, sql`delete from org_domains where org_id = ${orgId}`);
        await exec(tx, sql`update audit_streams set enabled = false where org_id = ${orgId}`);
        await exec(tx, sql`update organizations set shredded_at = ${now()} where org_id = ${orgId}`);
        await exec(tx, sql`delete from data_key_due where org_id = ${orgId}`);
        // The export job deletes the org's archives at its next turn: their keys were sealed with the keys just destroyed.
        await exec(tx, sql`insert into export_due (org_id, due_at) values (${orgId}, ${now()}) on conflict (org_id) do update set due_at = excluded.due_at`);
        await audit.append(tx, orgId, systemContext('data-key job'), {
          // In clear: no key of the org is left to seal it, and it holds ids and counts only.
          clear: true,
          action: 'org.shredded',
          target: { type: 'org', id: orgId },
          details: { keysDestroyed: destroyed.length, keyIds: destroyed.map((k) => k.id), membersRemoved: members },
        });
        return { keysDestroyed: destroyed.length, membersRemoved: members };
      });
      if (out) deps.sealer.forget(orgId);
      return out;
    },

    /** When the org's grace period ends, if it is being deleted and not shredded yet. */
    async purgeAt(orgId: string): Promise<Date | null> {
      const r = await db.withTenant({ orgId }, (tx) =>
        one<{ purge_after: Date | null }>(tx, sql`select purge_after from organizations where org_id = ${orgId} and shredded_at is null`),
      );
      return r?.purge_after ?? null;
    },
  };
}

export type Shredder = ReturnType<typeof createShredder>;
