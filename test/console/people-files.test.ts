import { readFileSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness, settled } from './browser.js';
import { clamdMissing, EICAR, startClamd, type Clamd } from '../support/clamd.js';
import { audit } from '../support/evidence.js';

/** The Files page in Chromium, against a real clamd: upload, list, download, refusal, delete, and what a viewer sees. */
describe.skipIf(clamdMissing())('console files in Chromium', () => {
  let c: ConsoleHarness;
  let clamd: Clamd;
  beforeAll(async () => {
    clamd = await startClamd();
    c = await startConsole('pglite', { PALISADE_CLAMD: `tcp://127.0.0.1:${clamd.port}` });
  }, 120_000);
  /** Chromium signed in as acme's `role`, on the Files page. */
  async function filesPageAs(role: 'member' | 'admin' | 'viewer'): Promise<Page> {
    const { page } = await c.newPage();
    const who = c.h.user('acme', role);
    await signInAs(page, who.email, who.password);
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Files' }).click();
    return page;
  }
  afterAll(async () => {
    await c?.close();
    await clamd?.stop();
  });

  it('a member uploads a file, downloads it as an attachment, sees malware refused, and deletes the file', async () => {
    const page = await filesPageAs('member');
    const form = page.getByRole('form', { name: 'Upload a file' });
    await form.getByLabel('File').setInputFiles({ name: 'findings.csv', mimeType: 'text/csv', buffer: Buffer.from('host,severity\nweb-01,high\n') });
    await form.getByRole('button', { name: 'Upload' }).click();
    await page.getByRole('status').getByText('Uploaded findings.csv').waitFor();
    const list = page.getByRole('list', { name: 'Files' });
    await list.getByText('findings.csv', { exact: true }).waitFor();
    await page.getByLabel('Storage').getByText(/26 bytes used of/).waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    const [download] = await Promise.all([page.waitForEvent('download'), list.getByRole('link', { name: 'Download findings.csv' }).click()]);
    expect(download.suggestedFilename()).toBe('findings.csv');
    expect(readFileSync(await download.path()).toString()).toBe('host,severity\nweb-01,high\n');

    // The EICAR test file: refused with the server's reason, nothing listed.
    await form.getByLabel('File').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: EICAR });
    await form.getByRole('button', { name: 'Upload' }).click();
    await form.getByText(/malware/i).first().waitFor();
    await settled(page);
    expect(await list.getByText('notes.txt').count()).toBe(0);

    await list.getByRole('button', { name: 'Delete findings.csv' }).click();
    await page.getByRole('button', { name: 'Yes, delete findings.csv' }).click();
    await page.getByText('No files in this project.').waitFor();
    const orgId = c.h.orgId('acme');
    expect((await audit(c.h, orgId, 'file.uploaded')).length).toBe(1);
    expect((await audit(c.h, orgId, 'file.refused')).length).toBe(1);
    expect((await audit(c.h, orgId, 'file.deleted')).length).toBe(1);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('an admin limits a project to some file types; an executable type is refused with the server\u2019s reason', async () => {
    const page = await filesPageAs('admin');
    const types = page.getByRole('form', { name: 'Accepted file types' });
    await types.getByLabel('Accepted file types').fill('pdf, .CSV exe');
    await types.getByRole('button', { name: 'Save file types' }).click();
    await types.getByText(/\.exe/).first().waitFor();
    await types.getByLabel('Accepted file types').fill('pdf, .CSV');
    await types.getByRole('button', { name: 'Save file types' }).click();
    await types.getByRole('status').getByText('This project accepts .csv, .pdf.').waitFor();
    await page.getByLabel('Storage').getByText(/accepts \.csv, \.pdf/).waitFor();
    const form = page.getByRole('form', { name: 'Upload a file' });
    await form.getByLabel('File').setInputFiles({ name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello') });
    await form.getByRole('button', { name: 'Upload' }).click();
    await form.getByText(/\.txt files are not accepted in this project/).first().waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await types.getByLabel('Accepted file types').fill('');
    await types.getByRole('button', { name: 'Save file types' }).click();
    await types.getByRole('status').getByText(/any type that is not a program/).waitFor();
  });

  it('a viewer lists and downloads but is offered no upload or delete', async () => {
    const page = await filesPageAs('viewer');
    await page.getByLabel('Storage').waitFor();
    expect(await page.getByRole('form', { name: 'Upload a file' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^Delete / }).count()).toBe(0);
    expect(await page.getByRole('form', { name: 'Accepted file types' }).count()).toBe(0);
    expect(await seriousViolations(page)).toEqual([]);
  });
});
