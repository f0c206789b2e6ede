import type { OwnerConnection } from '../../db/migrate.js';
import { headMac, type ChainKeys } from './chain.js';

/**
 * Migration 014 gave chain heads a MAC, which SQL cannot compute: it listed the heads it found
 * in `palisade_admin.audit_heads_to_seal`, and the process that applied it, holding the keys,
 * seals them here (run under the migration lock, before anything appends). A head that moved
 * since it was listed keeps no MAC: the writer refuses it and `audit verify` names it.
 * Returns how many heads were sealed.
 */
export async function sealListedHeads(owner: OwnerConnection, keys: ChainKeys): Promise<number> {
  const listed = await owner.query<{ t: string | null }>(`select to_regclass('palisade_admin.audit_heads_to_seal')::text as t`);
  if (!listed[0]?.t) return 0;
  const heads = await owner.query<{ org_id: string; seq: number | string; hash: string }>(
    `select org_id::text as org_id, seq, hash from palisade_admin.audit_heads_to_seal`);
  const keyId = keys.activeKeyId;
  const macs = heads.map((h) => headMac(keys, keyId, { org_id: h.org_id, seq: Number(h.seq), hash: h.hash }));
  await owner.query(
    `update palisade_admin.audit_heads_to_seal s set key_id = $1, mac = x.mac
     from unnest($2::uuid[], $3::text[]) as x(org_id, mac) where s.org_id = x.org_id`,
    [keyId, heads.map((h) => h.org_id), macs],
  );
  // One multi-statement script runs as one transaction: FORCE is lifted only while the owner
  // writes the MACs in, and nothing of it stays if a statement fails.
  await owner.script(`alter table audit_heads no force row level security;
    update audit_heads h set key_id = s.key_id, mac = s.mac from palisade_admin.audit_heads_to_seal s
      where h.org_id = s.org_id and h.seq = s.seq and h.hash = s.hash and h.mac = '' and s.mac <> '';
    alter table audit_heads force row level security;
    drop table palisade_admin.audit_heads_to_seal`);
  return heads.length;
}
