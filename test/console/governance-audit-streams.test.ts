/**
 * The console's Audit streaming page in Chromium (issue 14): an owner adds an HTTPS stream (its
 * secret shown once), sends a test event to a real receiver on loopback, sees the status and lag
 * after events flow, disables it, adds a syslog stream, deletes both; a viewer sees none of it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStreamWorker } from '../../src/domains/audit-streams/index.js';
import { audit } from '../support/evidence.js';
import { NdjsonReceiver } from '../audit-streams/receivers.js';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness, settled } from './browser.js';

describe('console audit streaming in Chromium', () => {
  let c: ConsoleHarness;
  const receiver = new NdjsonReceiver();
  let target = '';
  beforeAll(async () => {
    // Loopback destinations are the development/test opt-in.
    c = await startConsole('pglite', { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' });
    target = await receiver.start();
  });
  afterAll(async () => {
    await receiver.close();
    await c.close();
  });

  it('owner adds a stream (secret once), tests it, watches it deliver, disables and deletes it', async () => {
    const { page } = await c.newPage();
    const owner = c.h.user('acme', 'owner');
    const orgId = c.h.orgId('acme');
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    await page.getByRole('link', { name: 'Audit streaming' }).click();
    const form = page.getByRole('form', { name: 'Add stream' });
    await form.getByLabel('Receiver URL').fill(`${target}/siem`);
    await form.getByLabel('Description').fill('loopback SIEM');
    await form.getByLabel('Authorization header (optional)').fill('Splunk console-auth-canary');
    await form.getByRole('button', { name: 'Add stream' }).click();
    const shown = page.getByRole('region', { name: 'The stream signing secret' });
    await shown.getByText('shown only this once').waitFor();
    expect(await shown.getByTestId('secret-value').textContent()).toMatch(/^whsec_/);
    const list = page.getByRole('list', { name: 'Streams' });
    await list.getByText(`${target}/siem`).waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    await page.getByRole('button', { name: 'Send a test event to loopback SIEM' }).click();
    await page.getByRole('status').getByText(/Test event acknowledged/).waitFor();
    expect(receiver.events()).toMatchObject([{ seq: 0, action: 'audit.stream_test' }]);
    // The header reached the receiver; the page says one is set and never shows it.
    expect(receiver.batches.at(-1)?.headers.authorization).toBe('Splunk console-auth-canary');
    await list.getByText(/sends an Authorization header/).waitFor();
    expect(await page.content()).not.toContain('console-auth-canary');

    // The stream carries the trail from its own creation on: a worker drains it, the page says so.
    const s = c.h.built.services;
    const worker = createStreamWorker({ db: c.h.t.db, clock: c.h.clock, sealer: s.sealer, reader: s.auditReader, sender: s.streamSender, logger: c.h.logger, pollMs: 0 });
    expect(await worker.drain()).toBeGreaterThan(0);
    await page.reload();
    await list.getByText(/lag: 0 events/).waitFor();
    await list.getByTestId('stream-status').getByText('Status: OK').waitFor();
    expect(receiver.events().some((e) => e.action === 'audit.stream_created')).toBe(true);

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Remove Authorization header of loopback SIEM' }).click();
    await page.getByRole('button', { name: 'Remove Authorization header of loopback SIEM' }).waitFor({ state: 'detached' });
    await page.getByRole('button', { name: 'Disable loopback SIEM' }).click();
    await list.getByTestId('stream-status').getByText('Status: Disabled').waitFor();

    const syslogForm = page.getByRole('form', { name: 'Add stream' });
    await syslogForm.getByLabel('Destination type').selectOption('syslog');
    await syslogForm.getByLabel('Syslog host').fill('10.0.0.9');
    await syslogForm.getByRole('button', { name: 'Add stream' }).click();
    // A private address: refused with the reason, nothing added.
    await syslogForm.getByText(/destination refused: private/).waitFor();
    await syslogForm.getByLabel('Syslog host').fill('siem.example.com');
    await syslogForm.getByRole('button', { name: 'Add stream' }).click();
    await list.getByText('syslog+tls://siem.example.com:6514', { exact: true }).waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    for (const label of ['loopback SIEM', 'syslog+tls://siem.example.com:6514']) {
      page.once('dialog', (d) => void d.accept());
      await page.getByRole('button', { name: `Delete ${label}` }).click();
    }
    await page.getByText('No audit streams yet.').waitFor();
    expect((await audit(c.h, orgId, 'audit.stream_deleted')).length).toBe(2);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('a viewer sees no audit streaming page nor any of its buttons', async () => {
    const { page } = await c.newPage();
    const viewer = c.h.user('acme', 'viewer');
    const orgId = c.h.orgId('acme');
    await signInAs(page, viewer.email, viewer.password);
    await page.getByRole('banner').getByText(viewer.email).waitFor();
    await page.goto(`/orgs/${orgId}/audit-streams`);
    await page.getByRole('main').waitFor();
    await settled(page);
    expect(await page.getByRole('link', { name: 'Audit streaming' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /Add stream|Send a test event|Delete/ }).count()).toBe(0);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });
});
