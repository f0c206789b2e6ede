import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness } from './browser.js';

describe('governance: audit trail and security settings in Chromium', () => {
  let c: ConsoleHarness;
  let orgId: string;
  beforeAll(async () => {
    c = await startConsole('pglite');
    orgId = c.h.orgId('acme');
  });
  afterAll(async () => {
    await c.close();
  });

  async function asOwner(): Promise<Page> {
    const { page } = await c.newPage();
    const owner = c.h.user('acme', 'owner');
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    return page;
  }

  it('changes the session limits and finds the event in the audit trail, filtered by action and by target, with the chain verified', async () => {
    const page = await asOwner();
    await page.goto(`/orgs/${orgId}/settings`);
    await page.getByLabel('Session idle limit (minutes, empty for the default)').fill('45');
    await page.getByLabel('Session absolute limit (hours, empty for the default)').fill('12');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByRole('status').getByText('Settings saved.').waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    await page.getByRole('navigation').getByRole('link', { name: 'Audit trail' }).click();
    await page.getByText('Verified: the chain is intact').waitFor();
    await page.getByLabel('Action').fill('org.settings_updated');
    await page.getByRole('button', { name: 'Filter', exact: true }).click();
    const events = page.getByRole('list', { name: 'Audit events' });
    await events.getByText('org.settings_updated').first().waitFor();
    expect(await events.getByText('"sessionIdleMinutes"').count()).toBeGreaterThan(0);
    expect(await events.locator('li').filter({ hasNotText: 'org.settings_updated' }).count()).toBe(0);
    expect(await seriousViolations(page)).toEqual([]);

    // Per-entity history: the target's id becomes the filter.
    await events.getByRole('button', { name: /^History of / }).first().click();
    await expect.poll(() => page.getByLabel('Target (entity id)').inputValue()).not.toBe('');
    expect(await page.getByLabel('Action').inputValue()).toBe('');

    await page.getByRole('button', { name: 'Verify now' }).click();
    await page.getByText('Verified: the chain is intact').waitFor();
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('pages to older events', async () => {
    // More than a page of 20 events: settings changes through the API, each audited.
    const cookie = await c.h.cookieFor(c.h.user('acme', 'owner').email);
    for (let i = 0; i < 22; i++) {
      const r = await c.h.built.app.inject({ method: 'PATCH', url: `/api/orgs/${orgId}/settings`, headers: { cookie, origin: c.origin }, payload: { sessionIdleMinutes: 30 + i } });
      expect(r.statusCode, r.body).toBe(200);
    }
    const page = await asOwner();
    await page.goto(`/orgs/${orgId}/audit`);
    const events = page.getByRole('list', { name: 'Audit events' });
    await events.locator('li').first().waitFor();
    const first = await events.locator('li').first().innerText();
    const older = page.getByRole('button', { name: 'Older' });
    // The demo org's trail (seed, sign-ins, the change above) runs past one page of 20.
    expect(await older.isDisabled()).toBe(false);
    await older.click();
    await expect.poll(async () => events.locator('li').first().innerText()).not.toBe(first);
    await page.getByRole('button', { name: 'Newer' }).click();
    await expect.poll(async () => events.locator('li').first().innerText()).toBe(first);
  });

  it('warns before an admin IP allowlist that leaves the viewer out, and saves nothing until confirmed', async () => {
    const page = await asOwner();
    await page.goto(`/orgs/${orgId}/settings`);
    await page.getByText(/Your current address: \S+/).waitFor();
    await expect.poll(() => page.getByText('Your current address: unknown').count()).toBe(0);
    await page.getByLabel(/Admin IP allowlist/).fill('203.0.113.0/24');
    await page.getByRole('button', { name: 'Save settings' }).click();
    await page.getByRole('alert').getByText(/does not include your current address/).waitFor();
    const cookie = await c.h.cookieFor(c.h.user('acme', 'owner').email);
    const read = async () => (await c.h.built.app.inject({ method: 'GET', url: `/api/orgs/${orgId}/settings`, headers: { cookie } })).json() as { adminIpAllowlist: string[] };
    expect((await read()).adminIpAllowlist).toEqual([]);
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByRole('button', { name: 'Cancel' }).click();
    expect((await read()).adminIpAllowlist).toEqual([]);
  });

  for (const role of ['member', 'viewer'] as const) {
    it(`a ${role} has neither settings nor audit in the nav, and the URLs say not available`, async () => {
      const { page } = await c.newPage();
      const who = c.h.user('acme', role);
      await signInAs(page, who.email, who.password);
      await page.getByRole('banner').getByText(who.email).waitFor();
      const nav = page.getByRole('navigation');
      expect(await nav.getByRole('link', { name: 'Audit trail' }).count()).toBe(0);
      expect(await nav.getByRole('link', { name: 'Security settings' }).count()).toBe(0);
      for (const path of ['audit', 'settings']) {
        await page.goto(`/orgs/${orgId}/${path}`);
        await page.getByRole('alert').getByText(/This page is not available to you/).waitFor();
      }
      expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
    });
  }
});
