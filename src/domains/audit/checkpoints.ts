import { createReadStream, existsSync, mkdirSync } from 'node:fs';
import { appendFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { sql } from 'kysely';
import type { Logger } from 'pino';
import { z } from 'zod';
import { safeEqual } from '../../crypto/index.js';
import { one, type Database } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { canonicalJson, headMacProblem, type ChainKeys } from './chain.js';

/**
 * Checkpoints: chain heads recorded outside the database, one JSON line per chain and moment,
 * MACed under a key derived from the KEK (purpose `audit-checkpoint`). The head's own MAC stops
 * a head set back to a position it never had a MAC for; it cannot stop someone who kept an
 * older head row (a backup) and restores it after deleting the newer events, nor the deletion
 * of a whole chain. A checkpoint shipped off the machine can: `audit verify` fails when a chain
 * no longer reaches its latest checkpoint.
 */
export interface Checkpoint {
  org: string;
  seq: number;
  hash: string;
  at: string;
  keyId: string;
  mac: string;
}

const lineSchema = z.strictObject({
  v: z.literal(1),
  org: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
  seq: z.number().int().min(0),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  at: z.iso.datetime(),
  keyId: z.string().min(1).max(32),
  mac: z.string().regex(/^[0-9a-f]{64}$/),
});

function checkpointData(c: Pick<Checkpoint, 'org' | 'seq' | 'hash' | 'at'>): string {
  return canonicalJson(['v1', c.org, c.seq, c.hash, c.at]);
}

export function signCheckpoint(keys: ChainKeys, c: Pick<Checkpoint, 'org' | 'seq' | 'hash' | 'at'>): Checkpoint {
  const keyId = keys.activeKeyId;
  return { org: c.org, seq: c.seq, hash: c.hash, at: c.at, keyId, mac: keys.mac('audit-checkpoint', keyId, checkpointData(c)) };
}

/** One line of the checkpoint file (and of the log, under `auditCheckpoint`). */
export function checkpointLine(c: Checkpoint): string {
  return `${JSON.stringify({ v: 1, org: c.org, seq: c.seq, hash: c.hash, at: c.at, keyId: c.keyId, mac: c.mac })}\n`;
}

export interface CheckpointSet {
  file: string;
  /** False when the file does not exist (yet). */
  exists: boolean;
  /** The checkpoint of each org with the highest position, among lines whose MAC holds. */
  latest: Map<string, Checkpoint>;
  /** Lines that are no checkpoint, or whose MAC fails: each one is reported, none is trusted. */
  problems: string[];
}

/** Reads a checkpoint file line by line (it grows for as long as the server runs). */
export async function readCheckpoints(file: string, keys: ChainKeys): Promise<CheckpointSet> {
  const set: CheckpointSet = { file, exists: existsSync(file), latest: new Map(), problems: [] };
  if (!set.exists) return set;
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const text of lines) {
    n++;
    if (text.trim() === '') continue;
    let parsed: z.infer<typeof lineSchema>;
    try {
      parsed = lineSchema.parse(JSON.parse(text));
    } catch {
      set.problems.push(`line ${n} is not a checkpoint`);
      continue;
    }
    const c: Checkpoint = { org: parsed.org, seq: parsed.seq, hash: parsed.hash, at: parsed.at, keyId: parsed.keyId, mac: parsed.mac };
    let expected: string;
    try {
      expected = keys.mac('audit-checkpoint', c.keyId, checkpointData(c));
    } catch {
      set.problems.push(`line ${n} (org ${c.org}, seq ${c.seq}) names an unknown key "${c.keyId}": forged or the key is missing`);
      continue;
    }
    if (!safeEqual(expected, c.mac)) {
      set.problems.push(`line ${n} (org ${c.org}, seq ${c.seq}) fails its MAC: forged or corrupted`);
      continue;
    }
    const prev = set.latest.get(c.org);
    if (prev && prev.seq === c.seq && prev.hash !== c.hash) {
      set.problems.push(`line ${n} (org ${c.org}, seq ${c.seq}) disagrees with the checkpoint of ${prev.at} on that event: the chain was rewritten between them`);
    }
    if (!prev || c.seq >= prev.seq) set.latest.set(c.org, c);
  }
  return set;
}

export async function appendCheckpoints(file: string, checkpoints: readonly Checkpoint[]): Promise<void> {
  if (checkpoints.length === 0) return;
  mkdirSync(dirname(file), { recursive: true });
  // One write of whole lines to a file opened for appending: a concurrent writer's lines interleave
  // between lines, never inside one.
  await appendFile(file, checkpoints.map(checkpointLine).join(''), { mode: 0o600 });
}

export interface Checkpointer {
  /** Called by the audit writer on every append (before its transaction commits). */
  noteAppend(orgId: string): void;
  /** Checkpoints every chain appended to since the last rounds whose head moved; returns how many. */
  flush(): Promise<number>;
  start(): void;
  /** Stops the timer and writes a last round (the server's shutdown). */
  stop(): Promise<void>;
}

/**
 * The server's checkpoints: every `intervalMs`, and at shutdown, the head of each chain it
 * appended to, read back committed and checked against its MAC, goes to the file and the log.
 * The runtime role cannot list every org's head (RLS), and needs not: a chain nobody appended to
 * has not moved since its last checkpoint. `palisade audit checkpoint` covers every chain.
 */
export function createCheckpointer(deps: {
  db: Database;
  keys: ChainKeys;
  clock: Clock;
  file: string;
  intervalMs: number;
  logger: Pick<Logger, 'info' | 'error'>;
}): Checkpointer {
  // An org stays pending for two rounds: an append noted just before a round may commit just
  // after that round read its head, and the next round catches it.
  let noted = new Set<string>();
  let previous = new Set<string>();
  const written = new Map<string, { seq: number; hash: string }>();
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<number> | null = null;

  async function round(): Promise<number> {
    const orgs = new Set([...previous, ...noted]);
    previous = noted;
    noted = new Set();
    const out: Checkpoint[] = [];
    for (const orgId of orgs) {
      const head = await deps.db.withTenant({ orgId }, (tx) =>
        one<{ seq: number | string; hash: string; key_id: string; mac: string }>(
          tx, sql`select seq, hash, key_id, mac from audit_heads where org_id = ${orgId}`));
      if (!head || Number(head.seq) === 0) continue;
      const seq = Number(head.seq);
      const last = written.get(orgId);
      if (last && last.seq === seq && last.hash === head.hash) continue;
      // A head that fails its MAC is evidence, not a position to vouch for.
      const problem = headMacProblem(deps.keys, { org_id: orgId, seq, hash: head.hash, key_id: head.key_id, mac: head.mac });
      if (problem) {
        deps.logger.error({ orgId }, `audit checkpoint refused: ${problem}`);
        continue;
      }
      out.push(signCheckpoint(deps.keys, { org: orgId, seq, hash: head.hash, at: deps.clock.now().toISOString() }));
    }
    await appendCheckpoints(deps.file, out);
    for (const c of out) {
      written.set(c.org, { seq: c.seq, hash: c.hash });
      // The same line as in the file: lines taken from the log (`jq -c .auditCheckpoint`) verify too.
      deps.logger.info({ auditCheckpoint: { v: 1, ...c } }, 'audit checkpoint');
    }
    return out.length;
  }

  const flush = (): Promise<number> => {
    // One round at a time; a flush asked for during a round runs after it.
    const next = (running ?? Promise.resolve(0)).catch(() => 0).then(round);
    running = next;
    return next;
  };

  return {
    noteAppend(orgId) {
      noted.add(orgId);
    },
    flush,
    start() {
      if (timer) return;
      timer = setInterval(() => {
        flush().catch((err: unknown) => deps.logger.error({ err }, 'audit checkpoint failed'));
      }, deps.intervalMs);
      timer.unref();
    },
    async stop() {
      if (!timer) return;
      clearInterval(timer);
      timer = null;
      // Two rounds: the second one covers appends noted just before the first.
      await flush();
      await flush();
    },
  };
}
