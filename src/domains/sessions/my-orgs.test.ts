import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { signedIn } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId } from '../../crypto/index.js';
import { ALL_PERMISSIONS, BUILTIN_ROLE_PERMISSIONS, isOrgWide } from '../../kernel/permissions.js';

interface MyOrg {
  id: string;
  slug: string;
  role: string;
  roleLabel: string;
  permissions: string[];
  projectIds: string[] | null;
}

/**
 * GET /api/me (and every completed sign-in) names, per org, what the viewer may do there: the
 * console decides what to show from it, so it must be what the pipeline enforces.
 */
describe.each(ENGINES)('your organizations and what you may do in each, on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  const myOrgs = async (email: string): Promise<MyOrg[]> => {
    const res = await (await signedIn(h, email)).call('GET', '/api/me');
    expect(res.statusCode, res.body).toBe(200);
    return res.json<{ orgs: MyOrg[] }>().orgs;
  };
  const sorted = (list: readonly string[]) => [...list].sort();

  it('gives an owner every permission and every project', async () => {
    const orgs = await myOrgs(h.user('acme', 'owner').email);
    expect(orgs).toEqual([expect.objectContaining({
      id: h.orgId('acme'), slug: 'acme', role: 'owner', roleLabel: 'owner', permissions: sorted(ALL_PERMISSIONS), projectIds: null,
    })]);
  });

  it('gives a restricted member their role without org-wide permissions, and their projects', async () => {
    const [acme] = await myOrgs(h.user('acme', 'restricted_member').email);
    const production = h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id;
    expect(acme).toMatchObject({ role: 'member', roleLabel: 'member', projectIds: [production], permissions: sorted(BUILTIN_ROLE_PERMISSIONS.member) });

    // An admin restricted by hand (a row from before the rule): the org-wide permissions the role grants are gone, as at request time.
    const id = newId();
    const email = `me-${id.slice(0, 8)}@example.test`;
    await h.insertUser({ id, email, name: 'Restricted admin' });
    await h.t.owner.query('insert into memberships (org_id, user_id, role, restricted) values ($1, $2, $3, true)', [h.orgId('acme'), id, 'admin']);
    await h.t.owner.query('insert into project_access (org_id, project_id, user_id) values ($1, $2, $3)', [h.orgId('acme'), production, id]);
    const [radmin] = await myOrgs(email);
    expect(radmin?.permissions).toEqual(sorted(BUILTIN_ROLE_PERMISSIONS.admin.filter((p) => !isOrgWide(p))));
    expect(radmin?.permissions).not.toContain('audit:read');
    expect(radmin?.projectIds).toEqual([production]);
    // The server agrees: the trail, an org-wide read, is refused to them.
    expect((await (await signedIn(h, email)).call('GET', `/api/orgs/${h.orgId('acme')}/audit`)).statusCode).toBe(403);
  });

  it('shows a custom role by its name and permissions, and keeps each org\u2019s access to that org', async () => {
    const acme = h.orgId('acme');
    const globex = h.orgId('globex');
    const roleId = newId();
    await h.t.owner.query('insert into custom_roles (org_id, id, name, permissions) values ($1, $2, $3, $4)',
      [globex, roleId, 'Auditor', ['org:read', 'audit:read', 'members:read']]);
    // The acme project viewer also joins globex with the custom role: each org answers for itself.
    const viewer = h.user('acme', 'project_viewer');
    const viewerId = await h.userId(viewer.email);
    await h.t.owner.query('insert into memberships (org_id, user_id, role, custom_role_id) values ($1, $2, $3, $4)', [globex, viewerId, 'custom', roleId]);

    const orgs = await myOrgs(viewer.email);
    expect(orgs.map((o) => o.slug)).toEqual(['acme', 'globex']);
    const production = h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id;
    expect(orgs[0]).toMatchObject({
      id: acme, role: 'project_viewer', roleLabel: 'project_viewer', projectIds: [production], permissions: sorted(BUILTIN_ROLE_PERMISSIONS.project_viewer),
    });
    expect(orgs[1]).toMatchObject({ id: globex, role: 'custom', roleLabel: 'Auditor', projectIds: null, permissions: ['audit:read', 'members:read', 'org:read'] });

    // A member of acme alone learns nothing of globex.
    const others = await myOrgs(h.user('acme', 'admin').email);
    expect(others.map((o) => o.id)).toEqual([acme]);
    expect(others[0]).toMatchObject({ role: 'admin', projectIds: null, permissions: sorted(BUILTIN_ROLE_PERMISSIONS.admin) });
    await h.t.owner.query('delete from memberships where org_id = $1 and user_id = $2', [globex, viewerId]);
  });

  it('answers the same list to a completed sign-in', async () => {
    const who = h.user('globex', 'viewer');
    const res = await h.built.app.inject({
      method: 'POST', url: '/api/auth/login', headers: { origin: 'https://palisade.test' }, payload: { email: who.email, password: who.password },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<{ orgs: MyOrg[] }>().orgs).toEqual([expect.objectContaining({
      slug: 'globex', role: 'viewer', roleLabel: 'viewer', permissions: sorted(BUILTIN_ROLE_PERMISSIONS.viewer), projectIds: null,
    })]);
  });
});
