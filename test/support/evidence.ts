/** What the tests read back after a request: audit rows and account state, as the owner sees them. */
import type { TestApp } from './app.js';

export interface AuditRow {
  action: string;
  result: string;
  actor_id: string | null;
  target_id: string | null;
  ip: string;
  details: Record<string, unknown>;
}

export async function audit(h: TestApp, orgId: string, action: string, targetId?: string): Promise<AuditRow[]> {
  const list = await h.t.owner.query<AuditRow>(
    `select action, result, actor_id, target_id, ip, details from audit_events where org_id = $1 and action = $2 ${targetId ? 'and target_id = $3' : ''} order by seq`,
    targetId ? [orgId, action, targetId] : [orgId, action],
  );
  return list.map((r) => ({ ...r, details: typeof r.details === 'string' ? (JSON.parse(r.details) as Record<string, unknown>) : r.details }));
}

export async function lockState(h: TestApp, userId: string): Promise<{ failed_logins: number; locked_until: Date | null }> {
  const [r] = await h.t.owner.query<{ failed_logins: number; locked_until: Date | null }>('select failed_logins, locked_until from users where id = $1', [userId]);
  if (!r) throw new Error('no user');
  return r;
}
