import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import type { Locator } from 'playwright-core';
import { seriousViolations, signInAs, startConsole, stepUpIfAsked, type ConsoleHarness } from './browser.js';

/** The acme owner manages people, roles and projects through the console, end to end. */
describe('people pages as the acme owner', () => {
  let c: ConsoleHarness;
  let page: Page;
  let orgId: string;
  beforeAll(async () => {
    c = await startConsole('pglite');
    orgId = c.h.orgId('acme');
    page = (await c.newPage()).page;
    const owner = c.h.user('acme', 'owner');
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('heading', { name: 'Members', level: 1 }).waitFor();
  }, 60_000);
  afterAll(async () => {
    await c.close();
  });

  const stepUp = (done: Locator, state: 'visible' | 'detached' = 'visible') => stepUpIfAsked(page, c.h.user('acme', 'owner').password, done, state);

  it('lands on Members, changes a member\u2019s role, shows it in the list, and the audit trail has the event', async () => {
    expect(page.url()).toBe(`${c.origin}/orgs/${orgId}/members`);
    expect(await seriousViolations(page)).toEqual([]);
    const viewer = c.h.user('acme', 'viewer');
    const row = page.getByRole('listitem', { name: viewer.email, exact: true });
    await row.getByLabel(`Role of ${viewer.email}`, { exact: true }).selectOption('member');
    await row.getByRole('button', { name: 'Change role' }).click();
    await stepUp(row.locator('.badge', { hasText: /^Member$/ }));
    await row.locator('.badge', { hasText: /^Member$/ }).waitFor();
    const res = await c.h.built.app.inject({ method: 'GET', url: `/api/orgs/${orgId}/audit?action=member.role_changed`, headers: { cookie: await c.h.cookieFor(c.h.user('acme', 'owner').email) } });
    expect(res.statusCode).toBe(200);
    const events = (res.json() as { events: { action: string; result: string }[] }).events;
    expect(events.some((e) => e.action === 'member.role_changed' && e.result === 'success')).toBe(true);
  });

  it('invites someone and revokes the invitation', async () => {
    const form = page.getByRole('form', { name: 'Invite someone' });
    await form.getByLabel('Email').fill('newcomer@example.test');
    await form.getByRole('button', { name: 'Send invitation' }).click();
    await stepUp(page.getByRole('status').getByText('Invitation sent to newcomer@example.test'));
    await page.getByRole('status').getByText('Invitation sent to newcomer@example.test').waitFor();
    const revoke = page.getByRole('button', { name: 'Revoke invitation for newcomer@example.test' });
    await revoke.click();
    await stepUp(revoke, 'detached');
    await revoke.waitFor({ state: 'detached' });
  });

  it('creates a custom role from the catalogue and assigns it', async () => {
    await page.getByRole('link', { name: 'Roles' }).click();
    await page.getByRole('button', { name: 'Create custom role' }).click();
    const form = page.getByRole('form', { name: 'New custom role' });
    await form.getByLabel('Role name').fill('Auditors');
    await form.getByLabel(/^members:read/).check();
    await form.getByLabel(/^audit:read/).check();
    expect(await seriousViolations(page)).toEqual([]);
    await form.getByRole('button', { name: 'Create role' }).click();
    await stepUp(page.getByRole('listitem', { name: 'Auditors' }));
    await page.getByRole('listitem', { name: 'Auditors' }).waitFor();
    await page.getByRole('link', { name: 'Members' }).click();
    const member = c.h.user('acme', 'member');
    const row = page.getByRole('listitem', { name: member.email, exact: true });
    await row.getByLabel(`Role of ${member.email}`, { exact: true }).selectOption({ label: 'Auditors (custom role)' });
    await row.getByRole('button', { name: 'Change role' }).click();
    await stepUp(row.locator('.badge', { hasText: 'Auditors (custom role)' }));
    await row.locator('.badge', { hasText: 'Auditors (custom role)' }).waitFor();
  });

  it('creates and deletes a project', async () => {
    await page.getByRole('link', { name: 'Projects' }).click();
    await page.getByLabel('Project name').fill('Launch pad');
    await page.getByRole('button', { name: 'Create project' }).click();
    await stepUp(page.getByRole('listitem', { name: 'Launch pad' }));
    const row = page.getByRole('listitem', { name: 'Launch pad' });
    await row.waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await row.getByRole('button', { name: 'Delete Launch pad' }).click();
    await row.getByRole('button', { name: 'Yes, delete launch pad' }).click();
    await stepUp(row, 'detached');
    await row.waitFor({ state: 'detached' });
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('shows the server\u2019s last_owner refusal in words when the only owner demotes themself', async () => {
    await page.getByRole('link', { name: 'Members' }).click();
    const owner = c.h.user('acme', 'owner');
    const row = page.getByRole('listitem', { name: owner.email, exact: true });
    await row.getByLabel(`Role of ${owner.email}`, { exact: true }).selectOption('admin');
    await row.getByRole('button', { name: 'Change role' }).click();
    await stepUp(row.getByRole('alert').getByText('The organization needs at least one owner'));
    await row.getByRole('alert').getByText('The organization needs at least one owner').waitFor();
    await row.getByText('The organization must keep at least one owner').waitFor();
  });
});
