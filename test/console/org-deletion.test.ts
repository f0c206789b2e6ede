import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ManualClock } from '../../src/kernel/clock.js';
import { seriousViolations, signInAs, startConsole, stepUpIfAsked, type ConsoleHarness } from './browser.js';
import { audit } from '../support/evidence.js';

/**
 * Deleting an org from the console: the owner types the slug, is signed out of the org with
 * everyone else, signs in again, sees when it will be shredded, and restores it. An admin is
 * offered neither.
 */
describe('console org deletion and restore in Chromium', () => {
  let c: ConsoleHarness;
  let orgId: string;
  const clock = () => c.h.clock as ManualClock;
  beforeAll(async () => {
    c = await startConsole('pglite');
    orgId = c.h.orgId('acme');
  });
  afterAll(async () => {
    await c.close();
  });

  it('owner deletes with the slug typed, signs in again and restores', async () => {
    const owner = c.h.user('acme', 'owner');
    const { page } = await c.newPage();
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    await page.goto(`/orgs/${orgId}/settings`);
    const form = page.getByRole('form', { name: 'Delete this organization' });
    await form.waitFor();
    const button = form.getByRole('button', { name: /^Delete / });
    expect(await button.isDisabled()).toBe(true);
    await form.getByLabel(/Type the organization.s slug/).fill('acm');
    expect(await button.isDisabled()).toBe(true);
    await form.getByLabel(/Type the organization.s slug/).fill('acme');
    expect(await seriousViolations(page)).toEqual([]);
    clock().advance(1000);
    await button.click();
    const pending = page.getByRole('heading', { name: /is scheduled for deletion/ });
    await stepUpIfAsked(page, owner.password, pending);
    await pending.waitFor();
    // The deletion signed the owner out of the org too: the page says so and offers a way back in.
    await page.getByRole('button', { name: 'Sign in again' }).waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    expect(await audit(c.h, orgId, 'org.deletion_scheduled')).not.toEqual([]);

    clock().advance(1000);
    await page.getByRole('button', { name: 'Sign in again' }).click();
    await page.getByRole('form', { name: 'Sign in with a password' }).waitFor();
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('heading', { name: /is scheduled for deletion/ }).waitFor();
    // Until the shred, the owner can still take everything out (tenant export).
    await page.getByRole('heading', { name: 'Export all data' }).waitFor();
    await page.getByRole('button', { name: 'Export all data' }).waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    // Every page of the org is the deletion's status.
    await page.goto(`/orgs/${orgId}/members`);
    const restore = page.getByRole('button', { name: /^Restore / });
    await restore.waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await restore.click();
    const members = page.getByRole('heading', { name: 'Members', level: 1 });
    await stepUpIfAsked(page, owner.password, members);
    await members.waitFor();
    expect(await audit(c.h, orgId, 'org.restored')).not.toEqual([]);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('offers an admin no deletion', async () => {
    const admin = c.h.user('acme', 'admin');
    const { page } = await c.newPage();
    await signInAs(page, admin.email, admin.password);
    await page.getByRole('banner').getByText(admin.email).waitFor();
    await page.goto(`/orgs/${orgId}/settings`);
    await page.getByRole('heading', { name: 'Data encryption key' }).waitFor();
    expect(await page.getByRole('form', { name: 'Delete this organization' }).count()).toBe(0);
  });
});
