import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInAs, startConsole, type ConsoleHarness } from './browser.js';

describe('the org switcher', () => {
  let c: ConsoleHarness;
  beforeAll(async () => {
    c = await startConsole('pglite');
  });
  afterAll(async () => {
    await c.close();
  });

  it('moves between the viewer’s orgs, each with the pages the viewer’s role there allows', async () => {
    const viewer = c.h.user('acme', 'viewer');
    // The acme viewer founds an org of their own: owner there, viewer in acme.
    const cookie = await c.h.cookieFor(viewer.email);
    const created = await c.h.built.app.inject({
      method: 'POST', url: '/api/orgs', payload: { name: 'Side Project', slug: 'side-project' }, headers: { cookie, origin: c.origin },
    });
    expect(created.statusCode).toBe(201);
    const side = created.json<{ id: string }>().id;
    const acme = c.h.orgId('acme');

    const { page } = await c.newPage();
    await signInAs(page, viewer.email, viewer.password);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    const nav = page.getByRole('navigation', { name: 'Console' });

    await page.getByRole('banner').getByLabel('Organization').selectOption(acme);
    await expect.poll(() => page.url()).toContain(`/orgs/${acme}/`);
    await nav.getByRole('heading', { name: 'Acme Corp' }).waitFor();
    expect(await nav.getByRole('link', { name: 'Security settings' }).count()).toBe(0);

    await page.getByRole('banner').getByLabel('Organization').selectOption(side);
    await expect.poll(() => page.url()).toContain(`/orgs/${side}/`);
    await nav.getByRole('heading', { name: 'Side Project' }).waitFor();
    await nav.getByRole('link', { name: 'Security settings' }).waitFor();
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });
});
