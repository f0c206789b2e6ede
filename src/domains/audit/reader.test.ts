import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import type { AuditEventView } from './reader.js';

interface Page {
  events: AuditEventView[];
  nextBefore: number | null;
}

const HOUR = 3600 * 1000;

describe.each(ENGINES)('reading the audit trail on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let ownerId: string;
  let adminId: string;
  let alpha: string;
  let beta: string;
  let t0: Date;
  let t1: Date;

  const userIdOf = async (email: string) =>
    (await h.userId(email));
  async function post(email: string, url: string, payload: object): Promise<string> {
    const res = await h.built.app.inject({ method: 'POST', url, headers: { cookie: await h.cookieFor(email), origin: ORIGIN }, payload });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ id: string }>().id;
  }
  async function read(query: string, email = h.user('acme', 'owner').email, orgId = acme): Promise<Page> {
    const res = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${orgId}/audit${query}`, headers: { cookie: await h.cookieFor(email) } });
    expect(res.statusCode, res.body).toBe(200);
    return res.json<Page>();
  }
  const actions = (p: Page) => p.events.map((e) => e.action);

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    ownerId = await userIdOf(h.user('acme', 'owner').email);
    adminId = await userIdOf(h.user('acme', 'admin').email);
    // Two moments an hour apart: the owner and the admin each act at both.
    t0 = h.clock.now();
    alpha = await post(h.user('acme', 'owner').email, `/api/orgs/${acme}/projects`, { name: 'Alpha' });
    beta = await post(h.user('acme', 'admin').email, `/api/orgs/${acme}/projects`, { name: 'Beta' });
    h.clock.advance(HOUR);
    t1 = h.clock.now();
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const renamed = await h.built.app.inject({
      method: 'PATCH', url: `/api/orgs/${acme}/projects/${alpha}`, headers: { cookie: owner, origin: ORIGIN }, payload: { name: 'Alpha 2' },
    });
    expect(renamed.statusCode).toBe(200);
    await post(h.user('acme', 'admin').email, `/api/orgs/${acme}/roles`, { name: 'reader-role', permissions: ['org:read'] });
    await post(h.user('globex', 'owner').email, `/api/orgs/${h.orgId('globex')}/projects`, { name: 'Globex only' });
  });
  afterAll(async () => h?.close());

  it('lists newest first, every event of the org and nothing else', async () => {
    const all = await read('?limit=200');
    const stored = await h.t.owner.query<{ seq: number | string; id: string }>('select seq, id from audit_events where org_id = $1 order by seq desc', [acme]);
    expect(all.events.map((e) => [e.seq, e.id])).toEqual(stored.map((r) => [Number(r.seq), r.id]));
    expect(all.nextBefore).toBeNull();
    expect(actions(all).slice(0, 4)).toEqual(['role.created', 'project.updated', 'project.created', 'project.created']);
    expect(all.events.at(-1)).toMatchObject({ seq: 1, action: 'org.created', actor: { type: 'user', id: ownerId, role: 'owner' } });
  });

  it('filters by actor', async () => {
    const page = await read(`?actor=${adminId}`);
    expect(actions(page)).toEqual(['role.created', 'project.created']);
    expect(page.events.every((e) => e.actor.id === adminId && e.actor.role === 'admin')).toBe(true);
  });

  it('filters by action, exactly or by dotted prefix', async () => {
    const exact = await read('?action=project.created');
    expect(exact.events.map((e) => e.target?.id)).toEqual(
      expect.arrayContaining([alpha, beta, ...(h.demo.orgs[0]?.projects.map((p) => p.id) ?? [])]),
    );
    expect(new Set(actions(exact))).toEqual(new Set(['project.created']));
    expect(exact.events).toHaveLength(4);

    const prefix = await read('?action=project');
    expect(new Set(actions(prefix))).toEqual(new Set(['project.created', 'project.updated', 'project.member_assigned']));
    expect(prefix.events).toHaveLength(7);
    // A prefix is a whole segment: 'proj' matches nothing, nor does a LIKE pattern.
    expect((await read('?action=proj')).events).toEqual([]);
    expect((await read('?action=project%25')).events).toEqual([]);
    expect((await read('?action=%25')).events).toEqual([]);
  });

  it('filters by target', async () => {
    const page = await read(`?target=${alpha}`);
    expect(page.events.map((e) => [e.action, e.target])).toEqual([
      ['project.updated', { type: 'project', id: alpha }],
      ['project.created', { type: 'project', id: alpha }],
    ]);
    expect(page.events.map((e) => e.details)).toEqual([{ name: 'Alpha 2' }, { name: 'Alpha' }]);
  });

  it('filters by time: from inclusive, to exclusive', async () => {
    const from = encodeURIComponent(t1.toISOString());
    const later = await read(`?from=${from}`);
    expect(actions(later)).toEqual(['role.created', 'project.updated']);
    const earlier = await read(`?to=${from}&action=project`);
    expect(earlier.events.every((e) => new Date(e.at) < t1)).toBe(true);
    expect(actions(earlier)).not.toContain('project.updated');
    const window = await read(`?from=${encodeURIComponent(t0.toISOString())}&to=${from}&actor=${adminId}`);
    expect(window.events.map((e) => [e.action, e.target?.id])).toEqual([['project.created', beta]]);
    expect((await read(`?from=${encodeURIComponent(new Date(t1.getTime() + 1).toISOString())}`)).events).toEqual([]);
  });

  it('pages with before/nextBefore without gaps or repeats', async () => {
    const all = await read('?limit=200');
    const seen: number[] = [];
    let before: number | null = null;
    let pages = 0;
    do {
      const page: Page = await read(`?limit=3${before === null ? '' : `&before=${before}`}`);
      expect(page.events.length).toBeLessThanOrEqual(3);
      seen.push(...page.events.map((e) => e.seq));
      before = page.nextBefore;
      if (before !== null) expect(before).toBe(page.events.at(-1)?.seq);
      pages++;
    } while (before !== null && pages < 100);
    expect(seen).toEqual(all.events.map((e) => e.seq));
    expect(pages).toBe(Math.ceil(all.events.length / 3));
    // Filters and paging combine.
    const first = await read('?action=project&limit=2');
    const second = await read(`?action=project&limit=2&before=${first.nextBefore}`);
    expect([...first.events, ...second.events].map((e) => e.seq)).toEqual((await read('?action=project&limit=4')).events.map((e) => e.seq));
  });

  it('requires audit:read; answers 404 for another org; never mixes chains', async () => {
    for (const role of ['viewer', 'member', 'project_viewer', 'restricted_member'] as const) {
      const res = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${acme}/audit`, headers: { cookie: await h.cookieFor(h.user('acme', role).email) } });
      expect(res.statusCode, role).toBe(403);
      // Members restricted to projects are told why: the trail is org-wide (review R4 finding 4).
      const why = role === 'project_viewer' || role === 'restricted_member' ? ', an org-wide permission, which access restricted to projects never holds' : '';
      expect(res.json()).toMatchObject({ code: 'forbidden', detail: `requires audit:read${why}` });
    }
    expect(actions(await read('?limit=1', h.user('acme', 'admin').email))).toEqual(['authz.denied']);

    const foreign = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${h.orgId('globex')}/audit`, headers: { cookie: await h.cookieFor(h.user('acme', 'owner').email) } });
    expect(foreign.statusCode).toBe(404);

    const globex = await read('?limit=200', h.user('globex', 'owner').email, h.orgId('globex'));
    const acmeIds = new Set((await read('?limit=200')).events.map((e) => e.id));
    expect(globex.events.filter((e) => acmeIds.has(e.id))).toEqual([]);
    expect(globex.events[0]).toMatchObject({ action: 'project.created', details: { name: 'Globex only' } });
    expect((await read(`?target=${alpha}`, h.user('globex', 'owner').email, h.orgId('globex'))).events).toEqual([]);
    expect((await read(`?actor=${ownerId}`, h.user('globex', 'owner').email, h.orgId('globex'))).events).toEqual([]);
  });

  it('rejects malformed queries with 400', async () => {
    const cookie = await h.cookieFor(h.user('acme', 'owner').email);
    for (const q of ['?limit=0', '?limit=201', '?before=0', '?before=abc', '?from=yesterday', '?unknown=1', `?action=${'a'.repeat(201)}`]) {
      const res = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${acme}/audit${q}`, headers: { cookie } });
      expect(res.statusCode, q).toBe(400);
      expect(res.json()).toMatchObject({ code: 'validation_failed' });
    }
  });

  it('names the expected time format when a bound is not ISO 8601, and takes a bare day', async () => {
    const cookie = await h.cookieFor(h.user('acme', 'owner').email);
    const bad = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${acme}/audit?from=yesterday`, headers: { cookie } });
    expect(bad.body).toContain('ISO 8601');
    expect(bad.body).not.toContain('received Date');
    const day = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${acme}/audit?from=2000-01-01&to=2999-12-31T00:00:00%2B01:00`, headers: { cookie } });
    expect(day.statusCode, day.body).toBe(200);
    expect((day.json() as { events: unknown[] }).events.length).toBeGreaterThan(0);
  });
});
