import type { OwnerConnection } from '../../db/migrate.js';
import { headMac, type ChainKeys } from './chain.js';

/** The migration that gave chain heads a MAC (its file name without `.sql`). */
export const HEAD_MAC_MIGRATION = '014_audit_checkpoints_and_grants';

/**
 * Migration 014 gave chain heads a MAC, which SQL cannot compute: the process that applies it
 * holds the keys and seals the heads written before it, inside the migration's own transaction
 * (so the migration is applied with its heads sealed, or not at all, and nothing can be slipped
 * in between). Returns how many heads were sealed.
 */
export async function sealHeadsWithoutMac(tx: OwnerConnection, keys: ChainKeys): Promise<number> {
  // FORCE applies to the table owner too: lifted for this transaction's statements only.
  await tx.script('alter table audit_heads no force row level security');
  const heads = await tx.query<{ org_id: string; seq: number | string; hash: string }>(
    `select org_id::text as org_id, seq, hash from audit_heads where mac = '' for update`);
  const keyId = keys.activeKeyId;
  const macs = heads.map((h) => headMac(keys, keyId, { org_id: h.org_id, seq: Number(h.seq), hash: h.hash }));
  await tx.query(
    `update audit_heads h set key_id = $1, mac = x.mac from unnest($2::uuid[], $3::text[]) as x(org_id, mac) where h.org_id = x.org_id`,
    [keyId, heads.map((h) => h.org_id), macs],
  );
  await tx.script('alter table audit_heads force row level security');
  return heads.length;
}

/** The keyed migration steps of the audit trail, for `migrate({ keyedSteps })`. */
export function auditMigrationSteps(keys: ChainKeys): Readonly<Record<string, (tx: OwnerConnection) => Promise<void>>> {
  return {
    [HEAD_MAC_MIGRATION]: async (tx) => {
      await sealHeadsWithoutMac(tx, keys);
    },
  };
}
