import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations, signInAs, startConsole, stepUpIfAsked, type ConsoleHarness } from './browser.js';
import { audit } from '../support/evidence.js';

/**
 * A member's data-subject requests from the console: the owner downloads the member's personal
 * data as JSON, then erases them with their address typed; the row leaves the list and the page
 * says what became of the account. An admin is offered neither.
 */
describe('console data-subject export and erasure in Chromium', () => {
  let c: ConsoleHarness;
  let orgId: string;
  beforeAll(async () => {
    c = await startConsole('pglite');
    orgId = c.h.orgId('acme');
  });
  afterAll(async () => {
    await c.close();
  });

  it('owner exports a member\u2019s personal data, then erases them', async () => {
    const owner = c.h.user('acme', 'owner');
    const member = c.h.user('acme', 'member');
    const { page } = await c.newPage();
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    await page.goto(`/orgs/${orgId}/members`);
    const row = page.getByRole('listitem', { name: member.email, exact: true });
    await row.waitFor();

    c.h.clock.advance(11 * 60_000); // past the step-up window: both requests ask for it
    const download = page.waitForEvent('download');
    await row.getByRole('button', { name: 'Export personal data' }).click();
    const exported = row.getByRole('status').filter({ hasText: /^Exported: \d+ audit events about/ });
    await stepUpIfAsked(page, owner.password, exported);
    await exported.waitFor();
    const file = await (await download).path();
    const doc = JSON.parse(readFileSync(file, 'utf8')) as { user: { email: string }; membership: { role: string } };
    expect(doc.user.email).toBe(member.email);
    expect(doc.membership.role).toBe('member');
    expect(await audit(c.h, orgId, 'member.data_exported')).toHaveLength(1);

    await row.getByRole('button', { name: 'Erase personal data…' }).click();
    const form = row.getByRole('form', { name: `Erase ${member.email}` });
    const erase = form.getByRole('button', { name: `Erase ${member.email}` });
    await form.getByLabel(`Type ${member.email} to confirm`).fill('someone-else@acme.test');
    expect(await erase.isDisabled()).toBe(true);
    await form.getByLabel(`Type ${member.email} to confirm`).fill(member.email);
    expect(await seriousViolations(page)).toEqual([]);
    await erase.click();
    const summary = page.getByRole('status').filter({ hasText: `${member.email} erased:` });
    await stepUpIfAsked(page, owner.password, summary);
    await summary.getByText(/their account is deleted/).waitFor();
    await row.waitFor({ state: 'detached' });
    expect(await seriousViolations(page)).toEqual([]);
    expect(await audit(c.h, orgId, 'member.erased')).toHaveLength(1);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('offers an admin neither', async () => {
    const admin = c.h.user('acme', 'admin');
    const { page } = await c.newPage();
    await signInAs(page, admin.email, admin.password);
    await page.getByRole('banner').getByText(admin.email).waitFor();
    await page.goto(`/orgs/${orgId}/members`);
    const row = page.getByRole('listitem', { name: c.h.user('acme', 'viewer').email, exact: true });
    await row.getByRole('button', { name: 'Revoke sessions' }).waitFor();
    expect(await row.getByRole('button', { name: 'Export personal data' }).count()).toBe(0);
    expect(await row.getByRole('button', { name: 'Erase personal data…' }).count()).toBe(0);
  });
});
