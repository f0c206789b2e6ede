import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../../../test/support/app.js';
import { signedIn } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import {
  ALL_PERMISSIONS, API_KEY_PERMISSIONS, BROWSER_SAFE_PERMISSIONS, BUILTIN_ROLE_PERMISSIONS, BUILTIN_ROLES, ORG_WIDE_PERMISSIONS, PERMISSIONS,
  PROJECT_KEY_PERMISSIONS,
} from '../../kernel/permissions.js';

interface Catalogue {
  permissions: { name: string; description: string; orgWide: boolean; apiKey: boolean; browserSafe: boolean; projectKey: boolean; ownerOnly: boolean }[];
  builtinRoles: { name: string; permissions: string[] }[];
}

/** GET /api/permissions publishes the kernel's catalogue: the console derives its forms from it, so it must be the lists the server checks. */
describe.each(ENGINES)('the published permission catalogue on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  it('equals the kernel\u2019s lists, for any signed-in user', async () => {
    const res = await (await signedIn(h, h.user('globex', 'project_viewer').email)).call('GET', '/api/permissions');
    expect(res.statusCode, res.body).toBe(200);
    const c = res.json<Catalogue>();
    const names = (pick: (p: Catalogue['permissions'][number]) => boolean) => c.permissions.filter(pick).map((p) => p.name);
    expect(c.permissions.map((p) => p.name)).toEqual(ALL_PERMISSIONS);
    expect(Object.fromEntries(c.permissions.map((p) => [p.name, p.description]))).toEqual(PERMISSIONS);
    expect(names((p) => p.orgWide)).toEqual(ALL_PERMISSIONS.filter((p) => ORG_WIDE_PERMISSIONS.includes(p)));
    expect(new Set(names((p) => p.apiKey))).toEqual(new Set(API_KEY_PERMISSIONS));
    expect(new Set(names((p) => p.browserSafe))).toEqual(new Set(BROWSER_SAFE_PERMISSIONS));
    expect(new Set(names((p) => p.projectKey))).toEqual(new Set(PROJECT_KEY_PERMISSIONS));
    expect(names((p) => p.ownerOnly)).toEqual(['org:delete', 'org:export', 'owners:manage', 'billing:manage', 'data_keys:rotate', 'privacy:manage']);
    expect(names((p) => p.ownerOnly)).toEqual(BUILTIN_ROLE_PERMISSIONS.owner.filter((p) => !BUILTIN_ROLE_PERMISSIONS.admin.includes(p)));
    expect(c.builtinRoles).toEqual(BUILTIN_ROLES.map((name) => ({ name, permissions: [...BUILTIN_ROLE_PERMISSIONS[name]] })));
  });

  it('needs a session', async () => {
    const res = await h.built.app.inject({ method: 'GET', url: '/api/permissions', headers: { origin: ORIGIN } });
    expect(res.statusCode).toBe(401);
  });
});
