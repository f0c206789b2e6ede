import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness } from './browser.js';

/** What a viewer and a project viewer do not get on the people pages: hidden, not just refused. */
describe('people pages for roles without the permissions', () => {
  let c: ConsoleHarness;
  beforeAll(async () => {
    c = await startConsole('pglite');
  }, 60_000);
  afterAll(async () => {
    await c.close();
  });

  it('shows an acme viewer the members without invite, change or remove controls, and roles without a create button', async () => {
    const { page } = await c.newPage();
    const viewer = c.h.user('acme', 'viewer');
    await signInAs(page, viewer.email, viewer.password);
    await page.getByRole('heading', { name: 'Members', level: 1 }).waitFor();
    await page.getByRole('list', { name: 'Members' }).waitFor();
    await page.getByRole('listitem', { name: c.h.user('acme', 'owner').email, exact: true }).waitFor();
    for (const name of ['Send invitation', 'Change role', 'Remove', 'Revoke sessions', 'Assign']) {
      expect(await page.getByRole('button', { name, exact: true }).count()).toBe(0);
    }
    expect(await page.getByRole('form', { name: 'Invite someone' }).count()).toBe(0);
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByRole('link', { name: 'Roles' }).click();
    await page.getByRole('heading', { name: 'Built-in roles' }).waitFor();
    expect(await page.getByRole('button', { name: 'Create custom role' }).count()).toBe(0);
    expect(await seriousViolations(page)).toEqual([]);
  });

  it('keeps Members out of a project viewer\u2019s navigation and says "not available" at its URL', async () => {
    const { page } = await c.newPage();
    const pv = c.h.user('acme', 'project_viewer');
    await signInAs(page, pv.email, pv.password);
    await page.getByRole('navigation', { name: 'Console' }).getByRole('heading', { name: 'My account' }).waitFor();
    expect(await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Members' }).count()).toBe(0);
    await page.goto(`/orgs/${c.h.orgId('acme')}/members`);
    await page.getByRole('heading', { name: 'Not available', level: 1 }).waitFor();
    await page.getByRole('alert').getByText('not available').waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });
});
