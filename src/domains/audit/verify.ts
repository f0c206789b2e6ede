import { eventHash, GENESIS_HASH, headMacProblem, type ChainedEvent, type ChainKeys } from './chain.js';

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

/** A position of the chain recorded outside the database (checkpoints.ts): the chain must still reach it, through the same event. */
export interface ChainCheckpoint {
  seq: number;
  hash: string;
  at: string;
}

/**
 * Walks one org's chain in order and names each event that was edited (its hash no longer
 * matches), deleted (a gap in the sequence or a broken link) or moved (a link that points to
 * the wrong predecessor), and a truncated tail: the head records more than is there, or the head
 * was set back (its MAC no longer matches), or the chain ends before its last checkpoint.
 */
export async function verifyChain(
  query: Query,
  keys: ChainKeys,
  orgId: string,
  slug: string | null = null,
  checkpoint: ChainCheckpoint | null = null,
): Promise<ChainReport> {
  const problems: string[] = [];
  let checkpointSeen = false;
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
      if (checkpoint && seq === checkpoint.seq) {
        checkpointSeen = true;
        if (r.hash !== checkpoint.hash) {
          problems.push(`event ${seq} (${r.id}, ${r.action}) is not the event checkpointed at ${checkpoint.at}: the chain was rewritten after it`);
        }
      }
      prevHash = r.hash;
      expectedSeq = seq + 1;
    }
    if (batch.length < BATCH) break;
    after = Number(batch[batch.length - 1]?.seq);
  }
  const head = (await query<{ seq: number | string; hash: string; key_id: string; mac: string }>(
    `select seq, hash, key_id, mac from audit_heads where org_id = $1`, [orgId]))[0];
  if (head) {
    const macProblem = headMacProblem(keys, { org_id: orgId, seq: Number(head.seq), hash: head.hash, key_id: head.key_id, mac: head.mac });
    if (macProblem) problems.push(macProblem);
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
  const last = expectedSeq - 1;
  if (checkpoint && last < checkpoint.seq) {
    problems.push(count === 0 && !head
      ? `the chain is gone: its checkpoint of ${checkpoint.at} recorded ${checkpoint.seq} events (1..${checkpoint.seq} are missing)`
      : `events ${last + 1}..${checkpoint.seq} are missing: the chain is shorter than its checkpoint of ${checkpoint.at}`);
  } else if (checkpoint && !checkpointSeen && checkpoint.seq > 0) {
    problems.push(`event ${checkpoint.seq}, checkpointed at ${checkpoint.at}, is missing`);
  }
  return { orgId, slug, events: count, ok: problems.length === 0, problems };
}
