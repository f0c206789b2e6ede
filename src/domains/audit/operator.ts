import type { Clock } from '../../kernel/clock.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import type { ChainKeys } from './chain.js';
import { appendCheckpoints, readCheckpoints, signCheckpoint, type Checkpoint, type CheckpointSet } from './checkpoints.js';
import { verifyChain, type ChainReport, type Query } from './verify.js';

/**
 * The operator commands `palisade audit verify` and `palisade audit checkpoint`, over a
 * connection that reads every chain (the owner, bypassing RLS). They return what the CLI prints.
 */
export interface CommandOutcome {
  code: number;
  out: string;
  err: string;
}

export interface AuditWalkOptions {
  /** One org only, by slug or id; every chain otherwise. */
  org?: string | undefined;
  checkpointFile: string;
  /** Progress lines for a long walk (the CLI writes them to stderr): at most one every 2 s. */
  progress?: (line: string) => void;
  /** For the progress and the summary's rate; performance.now() by default. */
  nowMs?: () => number;
}

const PROGRESS_EVERY_MS = 2000;

const rate = (events: number, ms: number) => (ms > 0 ? Math.round((events * 1000) / ms).toLocaleString('en-US') : '–');

interface Walk {
  reports: (ChainReport & { head: { seq: number; hash: string } | null })[];
  checkpoints: CheckpointSet;
  /** How long the chains took to walk (ms). */
  tookMs: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The chains to walk come from the audit tables (and the checkpoints), not from `organizations`:
 * deleting an org's row must not take its chain out of the walk. An org row without a chain,
 * and a chain without its org row, are reported.
 */
async function walk(query: Query, keys: ChainKeys, opts: AuditWalkOptions): Promise<Walk | CommandOutcome> {
  const checkpoints = await readCheckpoints(opts.checkpointFile, keys);
  const orgRows = await query<{ org_id: string; slug: string }>(`select org_id::text as org_id, slug from organizations`);
  const slugOf = new Map(orgRows.map((o) => [o.org_id, o.slug]));
  let targets: string[];
  if (opts.org !== undefined) {
    const byId = UUID.test(opts.org) ? opts.org.toLowerCase() : null;
    const id = byId ?? orgRows.find((o) => o.slug === opts.org)?.org_id;
    if (!id) return { code: 2, out: '', err: `no organization ${opts.org}\n` };
    targets = [id];
  } else {
    // Distinct org ids of audit_events by a loose index scan: one index probe per chain, not a
    // pass over every event.
    const chains = await query<{ org_id: string }>(
      `with recursive chains(org_id) as (
         (select org_id from audit_events order by org_id limit 1)
         union all
         select (select e.org_id from audit_events e where e.org_id > c.org_id order by e.org_id limit 1)
         from chains c where c.org_id is not null)
       select org_id::text as org_id from chains where org_id is not null
       union select org_id::text from audit_heads`,
    );
    const ids = new Set([...chains.map((c) => c.org_id), ...slugOf.keys(), ...checkpoints.latest.keys()]);
    ids.delete(SYSTEM_ORG_ID);
    // Orgs by slug, then chains without an org row by id.
    const sortKey = (id: string) => (slugOf.has(id) ? `0${slugOf.get(id)}` : `1${id}`);
    targets = [SYSTEM_ORG_ID, ...[...ids].sort((a, b) => (sortKey(a) < sortKey(b) ? -1 : 1))];
  }
  const reports: Walk['reports'] = [];
  const now = opts.nowMs ?? (() => performance.now());
  const started = now();
  let done = 0;
  let toldAt = started;
  for (const [i, orgId] of targets.entries()) {
    const slug = orgId === SYSTEM_ORG_ID ? '(system)' : (slugOf.get(orgId) ?? null);
    const cp = checkpoints.latest.get(orgId) ?? null;
    const report = await verifyChain(query, keys, orgId, slug, cp, (events) => {
      const at = now();
      if (!opts.progress || at - toldAt < PROGRESS_EVERY_MS) return;
      toldAt = at;
      opts.progress(`chain ${i + 1} of ${targets.length} (${slug ?? orgId}): ${events.toLocaleString('en-US')} events; `
        + `${(done + events).toLocaleString('en-US')} in all at ${rate(done + events, at - started)} events/s`);
    });
    done += report.events;
    const head = (await query<{ seq: number | string; hash: string }>(`select seq, hash from audit_heads where org_id = $1`, [orgId]))[0];
    if (orgId !== SYSTEM_ORG_ID && slug === null) {
      report.problems.push('its organization row is missing (deleted): the chain has no org');
    } else if (orgId !== SYSTEM_ORG_ID && report.events === 0 && !head && !cp) {
      report.problems.push('the organization has no audit chain: its events and head were deleted');
    }
    report.ok = report.problems.length === 0;
    reports.push({ ...report, head: head ? { seq: Number(head.seq), hash: head.hash } : null });
  }
  return { reports, checkpoints, tookMs: now() - started };
}

function render(w: Walk): { out: string; err: string; failed: number } {
  const lines: string[] = [];
  let failed = 0;
  for (const r of w.reports) {
    lines.push(`${r.ok ? 'ok  ' : 'FAIL'} ${r.slug ?? '(no organization)'} (${r.orgId}): ${r.events} ${r.events === 1 ? 'event' : 'events'}`, ...r.problems.map((p) => `     ${p}`));
    if (!r.ok) failed++;
  }
  if (w.checkpoints.problems.length > 0) {
    lines.push(`FAIL checkpoints (${w.checkpoints.file})`, ...w.checkpoints.problems.map((p) => `     ${p}`));
    failed++;
  }
  const events = w.reports.reduce((n, r) => n + r.events, 0);
  lines.push(`verified ${events.toLocaleString('en-US')} ${events === 1 ? 'event' : 'events'} in ${w.reports.length} ${w.reports.length === 1 ? 'chain' : 'chains'} `
    + `in ${(w.tookMs / 1000).toFixed(1)} s (${rate(events, w.tookMs)} events/s)`);
  const err = w.checkpoints.exists
    ? ''
    : `no audit checkpoints at ${w.checkpoints.file} (palisade audit checkpoint, or a running server, writes them): a chain deleted whole, or cut short with an older head restored, goes unseen without them\n`;
  return { out: lines.length > 0 ? `${lines.join('\n')}\n` : '', err, failed };
}

/** `audit verify`: reads only. Exit 1 naming each broken chain, chain without org, or bad checkpoint line. */
export async function auditVerify(query: Query, keys: ChainKeys, opts: AuditWalkOptions): Promise<CommandOutcome> {
  const w = await walk(query, keys, opts);
  if (!('reports' in w)) return w;
  const { out, err, failed } = render(w);
  return { code: failed > 0 ? 1 : 0, out, err };
}

/**
 * `audit checkpoint`: verifies, then checkpoints each chain that passed and moved since its
 * latest checkpoint. A failing chain is not checkpointed (that would vouch for the damage).
 */
export async function auditCheckpoint(query: Query, keys: ChainKeys, clock: Clock, opts: AuditWalkOptions): Promise<CommandOutcome> {
  const w = await walk(query, keys, opts);
  if (!('reports' in w)) return w;
  const at = clock.now().toISOString();
  const fresh: Checkpoint[] = [];
  for (const r of w.reports) {
    if (!r.ok || !r.head || r.head.seq === 0) continue;
    const latest = w.checkpoints.latest.get(r.orgId);
    if (latest && latest.seq === r.head.seq && latest.hash === r.head.hash) continue;
    fresh.push(signCheckpoint(keys, { org: r.orgId, seq: r.head.seq, hash: r.head.hash, at }));
  }
  await appendCheckpoints(opts.checkpointFile, fresh);
  const { out, failed } = render(w);
  const summary = `checkpointed ${fresh.length} chain${fresh.length === 1 ? '' : 's'} to ${opts.checkpointFile}${failed > 0 ? ' (failing chains are not checkpointed)' : ''}\n`;
  return { code: failed > 0 ? 1 : 0, out: out + summary, err: '' };
}
