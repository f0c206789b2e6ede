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
  personal_sealed: string | null;
}

/** Erasures (tenancy/subject.ts) name, in clear, the events whose sealed part they destroyed. */
const ERASURES = new Set(['member.erased', 'user.erased']);

/** An event whose chained details are the digest of a sealed part (audit/writer.ts). */
const sealedDigestOnly = (d: unknown): boolean =>
  typeof d === 'object' && d !== null && !Array.isArray(d) && Object.keys(d).length === 1 && typeof (d as { sealed?: unknown }).sealed === 'string';

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
  /** Told the number of this chain's events walked so far, after each batch. */
  onBatch?: (events: number) => void,
): Promise<ChainReport> {
  const problems: string[] = [];
  // The sealed part is outside the chain (a rotation re-seals it): without a key, what can be
  // checked is that a part is gone only where an erasure, chained, says it destroyed it.
  const partless: { seq: number; id: string; action: string }[] = [];
  const erased = new Set<string>();
  let checkpointSeen = false;
  let expectedSeq = 1;
  let prevHash = GENESIS_HASH;
  let after = 0;
  let count = 0;
  for (;;) {
    const batch = await query<Row>(
      `select org_id, seq, id, at, actor_type, actor_id, actor_role, action, target_type, target_id, result, ip,
              user_agent, request_id, details, key_id, prev_hash, hash, personal_sealed
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
      const details = typeof r.details === 'string' ? (JSON.parse(r.details) as unknown) : r.details;
      if (sealedDigestOnly(details) && !r.personal_sealed) partless.push({ seq, id: r.id, action: r.action });
      if (ERASURES.has(r.action)) {
        const named = (details as { erasedEvents?: unknown } | null)?.erasedEvents;
        if (Array.isArray(named)) for (const e of named) if (typeof e === 'string') erased.add(e);
      }
      prevHash = r.hash;
      expectedSeq = seq + 1;
    }
    onBatch?.(count);
    if (batch.length < BATCH) break;
    after = Number(batch[batch.length - 1]?.seq);
  }
  for (const p of partless) {
    if (!erased.has(p.id)) problems.push(`event ${p.seq} (${p.id}, ${p.action}) lost its sealed details, address and user agent, and no erasure names it`);
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
