import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Locator, Page } from 'playwright-core';
import { verifyArchive, type PublishedKey } from '../../src/domains/exports/index.js';
import type { ManualClock } from '../../src/kernel/clock.js';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness } from './browser.js';
import { audit } from '../support/evidence.js';

/**
 * Exporting an org from the console: the owner asks (stepping up), watches the rows being
 * written, and downloads the archive through a single-use link; what the browser saves verifies
 * with the published key. An admin is offered no export.
 */
describe('console data export in Chromium', () => {
  let c: ConsoleHarness;
  let orgId: string;
  beforeAll(async () => {
    c = await startConsole('pglite', { PALISADE_EXPORT_DIR: mkdtempSync(join(tmpdir(), 'palisade-console-export-')) });
    orgId = c.h.orgId('acme');
  });
  afterAll(async () => {
    await c.close();
  });

  async function stepUpIfAsked(page: Page, password: string, done: Locator): Promise<void> {
    const dialog = page.getByRole('dialog', { name: 'Confirm it is you' });
    if (await Promise.race([dialog.waitFor().then(() => true), done.waitFor().then(() => false)])) {
      await dialog.getByLabel('Your password').fill(password);
      await dialog.getByRole('button', { name: 'Confirm' }).click();
      await dialog.waitFor({ state: 'hidden' });
    }
  }

  it('owner requests an export, sees it written and downloads an archive that verifies', async () => {
    const owner = c.h.user('acme', 'owner');
    const { page } = await c.newPage();
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    await page.goto(`/orgs/${orgId}/export`);
    await page.getByRole('heading', { name: 'Export all data' }).waitFor();
    await page.getByText('No export yet.').waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    (c.h.clock as ManualClock).advance(1000);
    await page.getByRole('button', { name: 'Export all data' }).click();
    const queued = page.getByRole('list', { name: 'Exports' }).getByText('Queued');
    await stepUpIfAsked(page, owner.password, queued);
    await queued.waitFor();
    await page.getByText(/^Rows written: 0 of \d+$/).waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    // The job a serving process runs in the background (not started by the test app).
    await c.h.built.services.exportJob.drain();
    const download = page.getByRole('button', { name: 'Download export' });
    await download.waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    const [saved] = await Promise.all([page.waitForEvent('download'), download.click()]);
    expect(saved.suggestedFilename()).toMatch(/^palisade-export-[0-9a-f-]{36}\.tar$/);
    const archive = readFileSync((await saved.path()) ?? '');
    const keys = (await c.h.built.app.inject({ method: 'GET', url: '/.well-known/palisade-export-keys' })).json<{ keys: PublishedKey[] }>().keys;
    const { manifest, problems } = verifyArchive(archive, keys);
    expect(problems).toEqual([]);
    expect(manifest?.orgId).toBe(orgId);
    for (const a of ['org.export_requested', 'org.export_completed', 'org.export_link_created', 'org.export_downloaded']) expect(await audit(c.h, orgId, a), a).not.toEqual([]);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('offers an admin no export', async () => {
    const admin = c.h.user('acme', 'admin');
    const { page } = await c.newPage();
    await signInAs(page, admin.email, admin.password);
    await page.getByRole('banner').getByText(admin.email).waitFor();
    expect(await page.getByRole('link', { name: 'Data export' }).count()).toBe(0);
    await page.goto(`/orgs/${orgId}/settings`);
    await page.getByRole('heading', { name: 'Data encryption key' }).waitFor();
    expect(await page.getByRole('heading', { name: 'Export all data' }).count()).toBe(0);
  });
});
