import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../../../test/support/app.js';
import { signUp } from '../../../test/support/accounts.js';
import { ENGINES } from '../../../test/support/db.js';
import { auditRows } from '../../../test/support/evidence.js';
import { newId } from '../../crypto/index.js';
import { systemContext } from '../../kernel/context.js';
import { eventHash, type ChainedEvent } from './chain.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const UA = 'palisade-audit-test/1.0';

interface EventRow extends Omit<ChainedEvent, 'at' | 'seq'> {
  seq: number | string;
  at: Date | string;
  prev_hash: string;
  hash: string;
}

describe.each(ENGINES)('audit trail on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  const userIdOf = async (email: string) =>
    (await h.userId(email));
  const call = (cookie: string, method: Method, url: string, payload?: object, remoteAddress?: string): Promise<LightMyRequestResponse> =>
    h.built.app.inject({
      method, url, headers: { cookie, origin: ORIGIN, 'user-agent': UA },
      ...(remoteAddress ? { remoteAddress } : {}), ...(payload === undefined ? {} : { payload }),
    });
  const head = async (orgId: string) =>
    (await h.t.owner.query<{ seq: number | string; hash: string }>('select seq, hash from audit_heads where org_id = $1', [orgId])).map((r) => ({ seq: Number(r.seq), hash: r.hash }))[0];
  const actionsAfter = async (orgId: string, seq: number) =>
    (await h.t.owner.query<{ action: string; actor_id: string | null; result: string }>(
      'select action, actor_id, result from audit_events where org_id = $1 and seq > $2 order by seq', [orgId, seq]));

  /**
   * Makes appends of `action` fail at the database: by a constraint the row violates, or by a
   * trigger raising an error, as a broken audit store would.
   */
  async function withFailingAudit(action: string, how: 'constraint' | 'trigger', fn: () => Promise<void>): Promise<void> {
    await h.t.owner.script(how === 'constraint'
      ? `alter table audit_events add constraint t_fail check (action <> '${action}') not valid`
      : `create function t_fail() returns trigger language plpgsql as $$ begin raise exception 'audit store down'; end $$;
         create trigger t_fail before insert on audit_events for each row when (new.action = '${action}') execute function t_fail();`);
    try {
      await fn();
    } finally {
      await h.t.owner.script(how === 'constraint'
        ? 'alter table audit_events drop constraint t_fail'
        : 'drop trigger t_fail on audit_events; drop function t_fail()');
    }
  }

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
  });
  afterAll(async () => h?.close());

  it('a project.created event records who, what, where, when, and chains onto the previous event', async () => {
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const ownerId = await userIdOf(h.user('acme', 'owner').email);
    const before = await head(acme);
    const res = await call(owner, 'POST', `/api/orgs/${acme}/projects`, { name: 'Evidence' }, '203.0.113.7');
    expect(res.statusCode).toBe(201);
    const projectId = res.json<{ id: string }>().id;

    const rows = await h.t.owner.query<EventRow>('select * from audit_events where org_id = $1 and target_id = $2', [acme, projectId]);
    expect(rows).toHaveLength(1);
    const e = rows[0] as EventRow;
    expect({ ...e, seq: Number(e.seq), at: new Date(e.at).toISOString() }).toEqual({
      org_id: acme,
      seq: (before?.seq ?? 0) + 1,
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
      at: h.clock.now().toISOString(),
      actor_type: 'user',
      actor_id: ownerId,
      actor_role: 'owner',
      action: 'project.created',
      target_type: 'project',
      target_id: projectId,
      result: 'success',
      // The personal part (address, user agent, details) is sealed; the chain holds its digest.
      ip: '',
      user_agent: '',
      request_id: expect.stringMatching(/^[A-Za-z0-9_-]{16}$/),
      details: { sealed: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) },
      personal_sealed: expect.stringMatching(/^v1\./),
      key_id: 'k1',
      prev_hash: before?.hash,
      hash: expect.stringMatching(/^[0-9a-f]{64}$/),
    });
    const [opened] = await auditRows(h, 'where org_id = $1 and target_id = $2', [acme, projectId]);
    expect(opened).toMatchObject({ ip: '203.0.113.7', user_agent: UA, details: { name: 'Evidence' } });
    expect(JSON.stringify(e)).not.toContain('203.0.113.7');
    // The request id is the one the request was logged under.
    const logged = h.logs
      .map((l) => JSON.parse(l) as { msg?: string; reqId?: string; status?: number; req?: { method: string; remoteAddress: string } })
      .filter((l) => l.reqId === e.request_id);
    expect(logged).toEqual([expect.objectContaining({ msg: 'request', status: 201, req: { method: 'POST', remoteAddress: '203.0.113.7' } })]);
    // The hash covers every field and the predecessor; the head moved to it.
    expect(eventHash(h.built.services.chainKeys, e.prev_hash, { ...e, seq: Number(e.seq), at: new Date(e.at).toISOString() })).toBe(e.hash);
    expect(await head(acme)).toEqual({ seq: (before?.seq ?? 0) + 1, hash: e.hash });

    const api = await call(owner, 'GET', `/api/orgs/${acme}/audit?target=${projectId}`);
    expect(api.json<{ events: unknown[] }>().events).toEqual([{
      seq: Number(e.seq), id: e.id, at: h.clock.now().toISOString(), actor: { type: 'user', id: ownerId, role: 'owner' },
      action: 'project.created', target: { type: 'project', id: projectId }, result: 'success', ip: '203.0.113.7',
      userAgent: UA, requestId: e.request_id, details: { name: 'Evidence' }, personal: 'open', hash: e.hash,
    }]);
  });

  it('every state change of a tenancy flow leaves its event, in order, by its actor', async () => {
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const ownerId = await userIdOf(h.user('acme', 'owner').email);
    const start = (await head(acme))?.seq ?? 0;
    const ok = async (res: Promise<LightMyRequestResponse>) => {
      const r = await res;
      expect(r.statusCode, r.body).toBeLessThan(300);
      return r;
    };
    const base = `/api/orgs/${acme}`;
    await ok(call(owner, 'PATCH', base, { name: 'Acme Corporation' }));
    await ok(call(owner, 'PATCH', `${base}/settings`, { sessionIdleMinutes: 20 }));
    const project = (await ok(call(owner, 'POST', `${base}/projects`, { name: 'Flow' }))).json<{ id: string }>().id;
    await ok(call(owner, 'PATCH', `${base}/projects/${project}`, { name: 'Flow 2' }));
    const asset = (await ok(call(owner, 'POST', `${base}/projects/${project}/assets`, { name: 'a', kind: 'host' }))).json<{ id: string }>().id;
    await ok(call(owner, 'DELETE', `${base}/projects/${project}/assets/${asset}`));
    const role = (await ok(call(owner, 'POST', `${base}/roles`, { name: `flow-${newId().slice(0, 6)}`, permissions: ['org:read'] }))).json<{ id: string }>().id;
    await ok(call(owner, 'PATCH', `${base}/roles/${role}`, { description: 'd' }));
    const email = `flow-${newId().slice(0, 8)}@example.test`;
    const inv = (await ok(call(owner, 'POST', `${base}/invitations`, { email, role: 'member', restricted: true }))).json<{ token: string; invitation: { id: string } }>();
    const spare = (await ok(call(owner, 'POST', `${base}/invitations`, { email: `spare-${email}`, role: 'viewer' }))).json<{ invitation: { id: string } }>();
    await ok(call(owner, 'DELETE', `${base}/invitations/${spare.invitation.id}`));
    const { id: newcomer, cookie: newcomerCookie } = await signUp(h, { email, name: 'Newcomer' });
    await ok(call(newcomerCookie, 'POST', '/api/invitations/accept', { token: inv.token }));
    await ok(call(owner, 'PUT', `${base}/projects/${project}/members/${newcomer}`));
    await ok(call(owner, 'DELETE', `${base}/projects/${project}/members/${newcomer}`));
    await ok(call(owner, 'PATCH', `${base}/members/${newcomer}`, { role: 'custom', customRoleId: role }));
    await ok(call(owner, 'PATCH', `${base}/members/${newcomer}`, { role: 'viewer' }));
    await ok(call(owner, 'DELETE', `${base}/roles/${role}`));
    await ok(call(owner, 'DELETE', `${base}/members/${newcomer}`));
    await ok(call(owner, 'DELETE', `${base}/projects/${project}`));

    const events = await actionsAfter(acme, start);
    expect(events.map((e) => e.action)).toEqual([
      'org.updated', 'org.settings_updated', 'project.created', 'project.updated', 'asset.created', 'asset.deleted',
      'role.created', 'role.updated', 'invitation.created', 'invitation.created', 'invitation.revoked', 'invitation.accepted',
      'project.member_assigned', 'project.member_unassigned', 'member.role_changed', 'member.role_changed', 'role.deleted',
      'member.removed', 'project.deleted',
    ]);
    expect(events.map((e) => e.actor_id)).toEqual(events.map((e) => (e.action === 'invitation.accepted' ? newcomer : ownerId)));
    expect(new Set(events.map((e) => e.result))).toEqual(new Set(['success']));
    await ok(call(owner, 'PATCH', `${base}/settings`, { sessionIdleMinutes: null }));
  });

  it('no audit, no change: a failing audit write rolls the change back', async () => {
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const before = await head(acme);
    await withFailingAudit('project.created', 'constraint', async () => {
      const res = await call(owner, 'POST', `/api/orgs/${acme}/projects`, { name: 'Unaudited' });
      // The error map turns integrity errors into a 4xx problem; the point is that it is an error.
      expect(res.statusCode).toBeGreaterThanOrEqual(400);
      expect(['validation_failed', 'internal']).toContain(res.json<{ code: string }>().code);
      expect(res.body).not.toContain('t_fail');
    });
    await withFailingAudit('project.created', 'trigger', async () => {
      const res = await call(owner, 'POST', `/api/orgs/${acme}/projects`, { name: 'Unaudited' });
      expect(res.statusCode).toBe(500);
      expect(res.json()).toMatchObject({ code: 'internal', requestId: expect.any(String) });
      expect(res.body).not.toContain('audit store down');
    });
    expect(await h.t.owner.query("select id from projects where name = 'Unaudited'", [])).toEqual([]);
    expect(await head(acme)).toEqual(before);

    // A role change: the membership and the session-rotation mark roll back too.
    const viewerId = await userIdOf(h.user('acme', 'viewer').email);
    await withFailingAudit('member.role_changed', 'trigger', async () => {
      expect((await call(owner, 'PATCH', `/api/orgs/${acme}/members/${viewerId}`, { role: 'admin' })).statusCode).toBe(500);
    });
    expect(await h.t.owner.query('select role from memberships where org_id = $1 and user_id = $2', [acme, viewerId])).toEqual([{ role: 'viewer' }]);
    expect(await h.t.owner.query('select 1 from sessions where user_id = $1 and rotate_pending', [viewerId])).toEqual([]);

    // An invitation: no row, and no mail carrying a token that would not work.
    const email = `unaudited-${newId().slice(0, 8)}@example.test`;
    await withFailingAudit('invitation.created', 'trigger', async () => {
      expect((await call(owner, 'POST', `/api/orgs/${acme}/invitations`, { email, role: 'viewer' })).statusCode).toBe(500);
    });
    expect(await h.t.owner.query('select 1 from invitations where email = $1', [email])).toEqual([]);
    expect(await h.t.db.withSystem('t', (tx) => h.built.services.mail.read(tx, email))).toEqual([]);
    expect(await head(acme)).toEqual(before);

    // With the fault gone the same request succeeds and is recorded.
    const again = await call(owner, 'POST', `/api/orgs/${acme}/projects`, { name: 'Unaudited' });
    expect(again.statusCode).toBe(201);
    expect((await actionsAfter(acme, before?.seq ?? 0)).map((e) => e.action)).toEqual(['project.created']);
  });

  it('a denied action is recorded in the org\u2019s chain with result denied', async () => {
    const viewer = await h.cookieFor(h.user('acme', 'viewer').email);
    const viewerId = await userIdOf(h.user('acme', 'viewer').email);
    const before = (await head(acme))?.seq ?? 0;
    const res = await call(viewer, 'POST', `/api/orgs/${acme}/projects`, { name: 'Forbidden' }, '198.51.100.9');
    expect(res.statusCode).toBe(403);
    const rows = await auditRows(h, 'where org_id = $1 and seq > $2', [acme, before]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      actor_type: 'user', actor_id: viewerId, actor_role: 'viewer', action: 'authz.denied', result: 'denied',
      target_type: null, target_id: null, ip: '198.51.100.9', user_agent: UA, request_id: res.json<{ requestId: string }>().requestId,
      details: { route: 'POST /api/orgs/:orgId/projects', reason: 'permission' },
    });
    expect(await h.t.owner.query("select 1 from projects where name = 'Forbidden'", [])).toEqual([]);
  });

  // In full: history cannot be rewritten: no UPDATE, DELETE or TRUNCATE for the runtime role, a
  // trigger for the owner
  it('history cannot be rewritten: no UPDATE, DELETE or TRUNCATE for the runtime role', async () => {
    const runtime = (q: ReturnType<typeof sql>) => h.t.db.withTenant({ orgId: acme }, (tx) => q.execute(tx));
    await expect(runtime(sql`update audit_events set details = '{}'::jsonb where seq = 1`)).rejects.toThrow(/permission denied/);
    await expect(runtime(sql`delete from audit_events where seq = 1`)).rejects.toThrow(/permission denied/);
    await expect(runtime(sql`truncate audit_events`)).rejects.toThrow(/permission denied/);
    // The sealed personal part alone may be re-sealed or removed (rotation, erasure), never given to an event without one.
    await h.t.db.withTenant({ orgId: acme }, (tx) => h.built.services.audit.append(tx, acme, systemContext('test'), { action: 'org.updated', clear: true, details: { n: 1 } }));
    const [clear] = await h.t.owner.query<{ seq: string; personal_sealed: string | null }>('select seq, personal_sealed from audit_events where org_id = $1 order by seq desc limit 1', [acme]);
    expect(clear?.personal_sealed).toBeNull();
    await expect(runtime(sql`update audit_events set personal_sealed = 'v1.x.y' where org_id = ${acme} and seq = ${clear?.seq ?? 0}`)).rejects.toThrow(/gets none/);
    // Nor can it write into another org's chain.
    const globex = h.orgId('globex');
    await expect(runtime(sql`insert into audit_events (org_id, seq, id, at, actor_type, action, result, prev_hash, hash)
      values (${globex}, 999, ${newId()}, now(), 'user', 'forged', 'success', 'x', 'y')`)).rejects.toThrow(/row-level security/);
    await expect(h.t.owner.query('update audit_events set details = $1 where org_id = $2 and seq = 1', ['{}', acme])).rejects.toThrow(/append-only/);
    await expect(h.t.owner.query('delete from audit_events where org_id = $1 and seq = 1', [acme])).rejects.toThrow(/append-only/);
    const first = await h.t.owner.query<{ action: string }>('select action from audit_events where org_id = $1 and seq = 1', [acme]);
    expect(first).toEqual([{ action: 'org.created' }]);
  });
});
