import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId } from '../../crypto/index.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { auditSelect } from '../../../test/support/evidence.js';

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** Objects of another org answer 404 under one's own org, and another org's URLs answer 404 too. */
describe.each(ENGINES)('objects of another org on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let g: { project: string; userId: string; roleId: string; invitationId: string; asset: string };
  let acmeOwner: string;

  const call = (cookie: string, method: Method, url: string, payload?: object): Promise<LightMyRequestResponse> =>
    h.built.app.inject({ method, url, headers: { cookie, origin: ORIGIN }, ...(payload === undefined ? {} : { payload }) });

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    const gOwner = await h.cookieFor(h.user('globex', 'owner').email);
    const role = await call(gOwner, 'POST', `/api/orgs/${globex}/roles`, { name: 'globex-role', permissions: ['org:read'] });
    const inv = await call(gOwner, 'POST', `/api/orgs/${globex}/invitations`, { email: 'someone@example.test', role: 'viewer' });
    const project = h.demo.orgs[1]?.projects[0]?.id ?? '';
    const asset = await call(gOwner, 'POST', `/api/orgs/${globex}/projects/${project}/assets`, { name: 'globex-asset', kind: 'host' });
    g = {
      project,
      userId: await h.userId(h.user('globex', 'member').email),
      roleId: role.json<{ id: string }>().id,
      invitationId: inv.json<{ invitation: { id: string } }>().invitation.id,
      asset: asset.json<{ id: string }>().id,
    };
    acmeOwner = await h.cookieFor(h.user('acme', 'owner').email);
  });
  afterAll(async () => h?.close());

  it('globex ids under acme URLs are 404 for acme\u2019s owner, and nothing changes', async () => {
    const acmeMember = await h.userId(h.user('acme', 'member').email);
    const attempts: [Method, string, object | undefined][] = [
      ['GET', `/projects/${g.project}`, undefined],
      ['PATCH', `/projects/${g.project}`, { name: 'pwned' }],
      ['DELETE', `/projects/${g.project}`, undefined],
      ['GET', `/projects/${g.project}/assets`, undefined],
      ['POST', `/projects/${g.project}/assets`, { name: 'planted', kind: 'host' }],
      ['DELETE', `/projects/${g.project}/assets/${g.asset}`, undefined],
      ['GET', `/projects/${g.project}/members`, undefined],
      ['PUT', `/projects/${g.project}/members/${acmeMember}`, undefined],
      ['PATCH', `/members/${g.userId}`, { role: 'viewer' }],
      ['DELETE', `/members/${g.userId}`, undefined],
      ['PATCH', `/members/${acmeMember}`, { role: 'custom', customRoleId: g.roleId }],
      ['PATCH', `/roles/${g.roleId}`, { description: 'pwned' }],
      ['DELETE', `/roles/${g.roleId}`, undefined],
      ['DELETE', `/invitations/${g.invitationId}`, undefined],
    ];
    for (const [method, path, body] of attempts) {
      const res = await call(acmeOwner, method, `/api/orgs/${acme}${path}`, body);
      expect(res.statusCode, `${method} ${path}: ${res.body}`).toBe(404);
      expect(res.json()).toMatchObject({ code: 'not_found' });
    }
    // Invitations that name another org's projects are refused the same way.
    const inv = await call(acmeOwner, 'POST', `/api/orgs/${acme}/invitations`, {
      email: 'x@example.test', role: 'member', restricted: true, projectIds: [g.project],
    });
    expect(inv.statusCode).toBe(404);

    const q = async <R>(text: string, params: unknown[]) => h.t.owner.query<R>(text, params);
    expect(await q('select name from projects where id = $1', [g.project])).toEqual([{ name: 'Production' }]);
    expect(await q('select name from assets where id = $1', [g.asset])).toEqual([{ name: 'globex-asset' }]);
    expect(await q("select count(*)::int as n from assets where name = 'planted'", [])).toEqual([{ n: 0 }]);
    expect(await q('select role from memberships where org_id = $1 and user_id = $2', [globex, g.userId])).toEqual([{ role: 'member' }]);
    expect(await q('select role, custom_role_id from memberships where org_id = $1 and user_id = $2', [acme, acmeMember])).toEqual([{ role: 'member', custom_role_id: null }]);
    expect(await q('select description from custom_roles where id = $1', [g.roleId])).toEqual([{ description: '' }]);
    expect(await q('select revoked_at from invitations where id = $1', [g.invitationId])).toEqual([{ revoked_at: null }]);
    expect(await q('select count(*)::int as n from project_access where project_id = $1', [g.project])).toEqual([{ n: 2 }]);
  });

  // In full: another org’s URLs are 404 (not 403) for a non-member, and the probe is kept out of
  // that org’s trail
  it('another org\u2019s URLs are 404 for a non-member, kept out of that org\u2019s trail', async () => {
    const before = await h.t.owner.query<{ n: number }>("select count(*)::int as n from audit_events where org_id = $1 and action = 'authz.denied'", [globex]);
    const attempts: [Method, string, object | undefined][] = [
      ['GET', '', undefined],
      ['GET', '/projects', undefined],
      ['GET', `/projects/${g.project}`, undefined],
      ['POST', '/projects', { name: 'planted' }],
      ['GET', '/members', undefined],
      ['GET', '/audit', undefined],
      ['PATCH', `/members/${g.userId}`, { role: 'admin' }],
      ['POST', '/invitations', { email: 'spy@example.test', role: 'owner' }],
    ];
    for (const [method, path, body] of attempts) {
      const res = await call(acmeOwner, method, `/api/orgs/${globex}${path}`, body);
      expect(res.statusCode, `${method} ${path}`).toBe(404);
      expect(res.json()).toMatchObject({ code: 'not_found' });
    }
    const after = await h.t.owner.query<{ n: number }>("select count(*)::int as n from audit_events where org_id = $1 and action = 'authz.denied'", [globex]);
    expect(after).toEqual(before);
    const ownerId = await h.userId(h.user('acme', 'owner').email);
    const probes = await auditSelect<{ details: { reason: string; route: string } }>(h, ['details'], `where org_id = $1 and actor_id = $2 and action = 'authz.denied' order by seq`, [SYSTEM_ORG_ID, ownerId]);
    expect(probes.map((p) => p.details.reason)).toEqual(Array(attempts.length).fill('not_member'));
    expect(probes[3]?.details.route).toBe('POST /api/orgs/:orgId/projects');
    expect(await h.t.owner.query("select 1 from invitations where email = 'spy@example.test'", [])).toEqual([]);
  });

  it('malformed or unknown org ids are 404 as well', async () => {
    for (const org of ['not-a-uuid', newId(), SYSTEM_ORG_ID]) {
      const res = await call(acmeOwner, 'GET', `/api/orgs/${org}/projects`);
      expect(res.statusCode, org).toBe(404);
    }
  });
});
