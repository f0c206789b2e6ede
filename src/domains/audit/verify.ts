import { eventHash, GENESIS_HASH, type ChainedEvent, type ChainKeys } from './chain.js';

export type Query = <R>(text: string, params?: unknown[]) => Promise<R[]>;

export interface ChainReport {
  orgId: string;
  slug: string | null;
  events: number;
  ok: boolean;
  problems: string[];
}

interface Row extends Omit<ChainedEvent, 'at' | 'seq'> {
  seq: number | string;
  at: Date | string;
  prev_hash: string;
  hash: string;
}

const BATCH = 5000;

/**
 * Walks one org's chain in order and names each event that was edited (its hash no longer
 * matches), deleted (a gap in the sequence or a broken link) or moved (a link that points to
 * the wrong predecessor), and a truncated tail (the head records more than is there).
 */
export async function verifyChain(query: Query, keys: ChainKeys, orgId: string, slug: string | null = null): Promise<ChainReport> {
  const problems: string[] = [];
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let after = 0;
  let count = 0;
  for (;;) {
    const batch = await query<Row>(
      `select org_id, seq, id, at, actor_type, actor_id, actor_role, action, target_type, target_id, result, ip,
              user_agent, request_id, details, key_id, prev_hash, hash
       from audit_events where org_id = $1 and seq > $2 order by seq limit ${BATCH}`,
      [orgId, after],
    );
    for (const r of batch) {
      const seq = Number(r.seq);
      count++;
      if (seq !== expectedSeq) {
        problems.push(`events ${expectedSeq}..${seq - 1} are missing (deleted) before event ${seq} (${r.id})`);
      }
      if (r.prev_hash !== prevHash) {
        problems.push(`event ${seq} (${r.id}, ${r.action}) does not link to its predecessor: deleted or reordered`);
      }
      const at = r.at instanceof Date ? r.at.toISOString() : new Date(r.at).toISOString();
      let computed: string | null;
      try {
        computed = eventHash(keys, r.prev_hash, { ...r, seq, at });
      } catch {
        computed = null;
      }
      if (computed === null) problems.push(`event ${seq} (${r.id}, ${r.action}) names an unknown chain key "${r.key_id}": forged or the key is missing`);
      else if (computed !== r.hash) problems.push(`event ${seq} (${r.id}, ${r.action}) was edited: its hash does not match its content`);
      prevHash = r.hash;
      expectedSeq = seq + 1;
    }
    if (batch.length < BATCH) break;
    after = Number(batch[batch.length - 1]?.seq);
  }
  const head = (await query<{ seq: number | string; hash: string }>(`select seq, hash from audit_heads where org_id = $1`, [orgId]))[0];
  if (head) {
    if (Number(head.seq) > expectedSeq - 1) {
      problems.push(`the chain head records ${head.seq} events but the last present is ${expectedSeq - 1}: events were deleted from the end`);
    } else if (Number(head.seq) < expectedSeq - 1) {
      problems.push(`the chain head records ${head.seq} events but the last present is ${expectedSeq - 1}: events were appended outside the audit writer`);
    } else if (head.hash !== prevHash) {
      problems.push(`the chain head hash does not match the last event ${expectedSeq - 1}`);
    }
  } else if (count > 0) {
    problems.push('the chain head is missing');
  }
  return { orgId, slug, events: count, ok: problems.length === 0, problems };
}
