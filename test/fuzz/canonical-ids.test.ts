/**
 * UUIDs are case-insensitive on input. An id written in upper or mixed case must address the
 * same thing as its canonical lower-case form — and must not leak into state in a form that
 * later comparisons (project scope, the audit hash chain) read differently.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/domains/audit/verify.js';
import { signUp } from '../support/accounts.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';

/** The same uuid with each letter's case chosen by `mask`. */
function recase(id: string, mask: boolean[]): string {
  return [...id].map((c, i) => (mask[i % mask.length] ? c.toUpperCase() : c)).join('');
}

describe.each(ENGINES)('non-canonical ids on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let project: string;

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    project = h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id ?? '';
  });
  afterAll(async () => h?.close());

  it('keeps the audit chain verifiable when a mutation names its org in upper case', async () => {
    const cookie = await h.cookieFor(h.user('acme', 'owner').email);
    const upper = acme.toUpperCase();
    const created = await h.built.app.inject({
      method: 'POST', url: `/api/orgs/${upper}/projects`, headers: { cookie, origin: ORIGIN }, payload: { name: 'Upper' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const renamed = await h.built.app.inject({
      method: 'PATCH', url: `/api/orgs/${upper}/projects/${String((created.json() as { id: string }).id).toUpperCase()}`,
      headers: { cookie, origin: ORIGIN }, payload: { name: 'Upper renamed' },
    });
    expect(renamed.statusCode, renamed.body).toBe(200);
    const report = await verifyChain(h.t.owner.query, h.built.services.chainKeys, acme, 'acme');
    expect(report.problems).toEqual([]);
    expect(report.ok).toBe(true);
    const events = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${acme}/audit?limit=2`, headers: { cookie } });
    expect((events.json() as { events: { action: string; target: { id: string } }[] }).events.map((e) => [e.action, e.target.id])).toEqual([
      ['project.updated', (created.json() as { id: string }).id],
      ['project.created', (created.json() as { id: string }).id],
    ]);
  });

  it('keeps the audit chain verifiable when an invitation token names its org in upper case', async () => {
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const email = 'upper.invitee@example.test';
    const { cookie: invitee } = await signUp(h, { email, password: 'Upper-invitee-passphrase-41', name: 'Upper Invitee' });
    const invited = await h.built.app.inject({
      method: 'POST', url: `/api/orgs/${acme}/invitations`, headers: { cookie: owner, origin: ORIGIN }, payload: { email, role: 'viewer' },
    });
    expect(invited.statusCode, invited.body).toBe(201);
    const token = String((invited.json() as { token: string }).token);
    const [org, id, secret] = token.slice('pal_inv_'.length).split('.') as [string, string, string];
    const accepted = await h.built.app.inject({
      method: 'POST', url: '/api/invitations/accept', headers: { cookie: invitee, origin: ORIGIN },
      payload: { token: `pal_inv_${org.toUpperCase()}.${id.toUpperCase()}.${secret}` },
    });
    expect(accepted.statusCode, accepted.body).toBe(200);
    expect(accepted.json()).toEqual({ orgId: acme });
    const report = await verifyChain(h.t.owner.query, h.built.services.chainKeys, acme, 'acme');
    expect(report.problems).toEqual([]);
  });

  it('lets a restricted member reach an assigned project whatever the case of its id', async () => {
    const cookie = await h.cookieFor(h.user('acme', 'restricted_member').email);
    for (const id of [project, project.toUpperCase()]) {
      const res = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${acme.toUpperCase()}/projects/${id}`, headers: { cookie } });
      expect(res.statusCode, `${id}: ${res.body}`).toBe(200);
      expect((res.json() as { id: string }).id).toBe(project);
    }
  });

  it('clears the cookie when the current session is revoked by its upper-case id', async () => {
    const cookie = await h.cookieFor(h.user('acme', 'viewer').email);
    const list = await h.built.app.inject({ method: 'GET', url: '/api/me/sessions', headers: { cookie } });
    const current = (list.json() as { sessions: { id: string; current: boolean }[] }).sessions.find((s) => s.current);
    expect(current).toBeDefined();
    const res = await h.built.app.inject({
      method: 'DELETE', url: `/api/me/sessions/${String(current?.id).toUpperCase()}`, headers: { cookie, origin: ORIGIN },
    });
    expect(res.statusCode).toBe(204);
    const cleared = res.cookies.find((c) => c.name === h.built.cookie.name);
    expect(cleared?.value).toBe('');
  });

  it('answers every org-scoped read the same for any case of the ids', async () => {
    const cookie = await h.cookieFor(h.user('acme', 'restricted_member').email);
    const reads = h.built.routes.filter((r) => r.method === 'GET' && r.url.includes(':orgId'));
    expect(reads.length).toBeGreaterThan(8);
    const url = (u: string, org: string, proj: string) => u.replace(':orgId', org).replace(':projectId', proj);
    const expected = new Map<string, number>();
    for (const r of reads) {
      expected.set(r.url, (await h.built.app.inject({ method: 'GET', url: url(r.url, acme, project), headers: { cookie } })).statusCode);
    }
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...reads), fc.array(fc.boolean(), { minLength: 1, maxLength: 36 }), async (r, mask) => {
        const res = await h.built.app.inject({ method: 'GET', url: url(r.url, recase(acme, mask), recase(project, mask)), headers: { cookie } });
        expect(res.statusCode, `${r.url}: ${res.body.slice(0, 200)}`).toBe(expected.get(r.url));
      }),
      { numRuns: 40, endOnFailure: true },
    );
  });
});
