import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';

describe.each(ENGINES)('core flows on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  it('signs in, lists projects, writes an audited change', async () => {
    const cookie = await h.login(h.user('acme', 'owner'));
    const org = h.orgId('acme');
    const list = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${org}/projects`, headers: { cookie } });
    expect(list.statusCode).toBe(200);
    expect(list.json().projects).toHaveLength(2);
    const created = await h.built.app.inject({
      method: 'POST', url: `/api/orgs/${org}/projects`, headers: { cookie, origin: ORIGIN }, payload: { name: 'Audited' },
    });
    expect(created.statusCode).toBe(201);
    const audit = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${org}/audit?action=project.created&limit=1`, headers: { cookie } });
    expect(audit.json().events[0]).toMatchObject({ action: 'project.created', target: { id: created.json().id }, result: 'success' });
  });

  it('answers 404 for another org and 403 for a missing permission', async () => {
    const cookie = await h.cookieFor(h.user('acme', 'viewer').email);
    const other = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${h.orgId('globex')}/projects`, headers: { cookie } });
    expect(other.statusCode).toBe(404);
    const denied = await h.built.app.inject({
      method: 'POST', url: `/api/orgs/${h.orgId('acme')}/projects`, headers: { cookie, origin: ORIGIN }, payload: { name: 'x' },
    });
    expect(denied.statusCode).toBe(403);
    expect(denied.headers['content-type']).toContain('application/problem+json');
  });
});
