/** What the tests read back after a request: audit rows and account state, as the owner sees them. */
import type { ChainedEvent } from '../../src/domains/audit/chain.js';
import { personalRef, type PersonalPart } from '../../src/domains/audit/writer.js';
import type { TestApp } from './app.js';

/** An audit event as stored, with its sealed personal part (details, address, user agent) opened. */
export interface OpenedEvent extends Omit<ChainedEvent, 'at' | 'details' | 'key_id'> {
  at: Date;
  details: Record<string, unknown>;
  /** The row as stored: '' address and user agent, and the digest as details, for a sealed event. */
  stored: { ip: string; user_agent: string; details: Record<string, unknown>; personal_sealed: string | null };
}

type RawEvent = Omit<OpenedEvent, 'seq' | 'stored' | 'details'> & { seq: number | string; details: unknown; personal_sealed: string | null };

const asObject = (d: unknown): Record<string, unknown> => (typeof d === 'string' ? (JSON.parse(d) as Record<string, unknown>) : (d as Record<string, unknown>));

/**
 * Audit events read over the owner connection (`select * from audit_events <where>`), their
 * personal part opened with the app's sealer, as the trail shows them to audit:read.
 */
export async function auditRows(h: TestApp, where: string, params: unknown[] = []): Promise<OpenedEvent[]> {
  const raw = await h.t.owner.query<RawEvent>(`select * from audit_events ${where}`, params);
  // One transaction per org, each data key read once: the matrix reads thousands of events.
  const parts = new Map<string, PersonalPart>();
  for (const orgId of new Set(raw.filter((r) => r.personal_sealed).map((r) => r.org_id))) {
    await h.t.db.withTenant({ orgId }, async (tx) => {
      const open = h.built.services.sealer.opener(tx);
      for (const r of raw) {
        if (r.org_id === orgId && r.personal_sealed) parts.set(r.id, JSON.parse(await open(personalRef(orgId, r.id), r.personal_sealed)) as PersonalPart);
      }
    });
  }
  const out: OpenedEvent[] = [];
  for (const r of raw) {
    const details = asObject(r.details);
    const stored = { ip: r.ip, user_agent: r.user_agent, details, personal_sealed: r.personal_sealed };
    const part = parts.get(r.id);
    out.push({
      ...r, seq: Number(r.seq), stored,
      ip: part?.ip ?? r.ip, user_agent: part?.userAgent ?? r.user_agent, details: (part?.details as Record<string, unknown> | undefined) ?? details,
    });
  }
  return out;
}

export interface AuditRow {
  action: string;
  result: string;
  actor_id: string | null;
  target_id: string | null;
  ip: string;
  details: Record<string, unknown>;
}

export async function audit(h: TestApp, orgId: string, action: string, targetId?: string): Promise<AuditRow[]> {
  const list = await auditRows(h, `where org_id = $1 and action = $2 ${targetId ? 'and target_id = $3' : ''} order by seq`, targetId ? [orgId, action, targetId] : [orgId, action]);
  return list.map((r) => ({ action: r.action, result: r.result, actor_id: r.actor_id, target_id: r.target_id, ip: r.ip, details: r.details }));
}

export async function lockState(h: TestApp, userId: string): Promise<{ failed_logins: number; locked_until: Date | null }> {
  const [r] = await h.t.owner.query<{ failed_logins: number; locked_until: Date | null }>('select failed_logins, locked_until from users where id = $1', [userId]);
  if (!r) throw new Error('no user');
  return r;
}

/** auditRows with only `columns` of each event (the opened values), for tests that compare whole rows. */
export async function auditSelect<T = Record<string, unknown>>(
  h: TestApp, columns: readonly (keyof OpenedEvent)[] | '*', where: string, params: unknown[] = [],
): Promise<T[]> {
  const rows = await auditRows(h, where, params);
  return (columns === '*' ? rows : rows.map((e) => Object.fromEntries(columns.map((c) => [c, e[c]])))) as T[];
}
