import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness, settled } from './browser.js';
import { Receiver } from '../webhooks/receiver.js';
import { audit } from '../support/evidence.js';

describe('console webhooks in Chromium', () => {
  let c: ConsoleHarness;
  const receiver = new Receiver();
  let target = '';
  beforeAll(async () => {
    // Loopback destinations are the development/test opt-in (webhooks/egress.ts).
    c = await startConsole('pglite', { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' });
    target = await receiver.start();
  });
  afterAll(async () => {
    await receiver.close();
    await c.close();
  });

  it('owner adds an endpoint (secret once), sees a delivery, redelivers, rotates the secret', async () => {
    const { page } = await c.newPage();
    const owner = c.h.user('acme', 'owner');
    const orgId = c.h.orgId('acme');
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    await page.goto(`/orgs/${orgId}/webhooks`);
    const form = page.getByRole('form', { name: 'Add endpoint' });
    await form.getByLabel('Endpoint URL').fill(`${target}/hook`);
    await form.getByLabel('Description').fill('loopback receiver');
    await form.getByLabel('Every event type, present and future').check();
    await form.getByRole('button', { name: 'Add endpoint' }).click();
    const shown = page.getByRole('region', { name: 'The endpoint signing secret' });
    await shown.getByText('shown only this once').waitFor();
    expect(await shown.getByTestId('secret-value').textContent()).toMatch(/^whsec_/);
    await page.getByRole('list', { name: 'Endpoints' }).getByText(`${target}/hook`).waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    // An org.settings_updated event, made from the console's own browser-origins form.
    await page.goto(`/orgs/${orgId}/api-keys`);
    await page.getByLabel(/^Origins/).fill('https://app.example.com');
    await page.getByRole('button', { name: 'Save origins' }).click();
    await expect.poll(async () => (await audit(c.h, orgId, 'org.settings_updated')).length).toBeGreaterThan(0);
    await c.h.built.services.webhookWorker.drain();
    await receiver.waitFor(1);

    await page.goto(`/orgs/${orgId}/webhooks`);
    await page.getByRole('button', { name: 'Deliveries of loopback receiver' }).click();
    const log = page.getByRole('list', { name: 'Deliveries' });
    await log.getByText(/org\.settings_updated/).waitFor();
    await log.getByText(/succeeded · response 204/).waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await log.getByRole('button', { name: 'Redeliver' }).first().click();
    await expect.poll(async () => (await audit(c.h, orgId, 'webhook.redelivered')).length).toBeGreaterThan(0);
    await c.h.built.services.webhookWorker.drain();
    await receiver.waitFor(2);

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Rotate secret of loopback receiver' }).click();
    const rotated = page.getByRole('region', { name: 'The new signing secret' });
    await rotated.getByText('shown only this once').waitFor();
    expect(await rotated.getByTestId('secret-value').textContent()).toMatch(/^whsec_/);
    expect(await audit(c.h, orgId, 'webhook.secret_rotated')).not.toEqual([]);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('owner edits and deletes an endpoint, adds and deletes an inbound source (its secret never shown back)', async () => {
    const { page } = await c.newPage();
    const owner = c.h.user('acme', 'owner');
    const orgId = c.h.orgId('acme');
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    await page.goto(`/orgs/${orgId}/webhooks`);
    await page.getByRole('button', { name: 'Edit loopback receiver' }).click();
    const edit = page.getByRole('form', { name: 'Save endpoint' });
    await edit.getByLabel('Description').fill('renamed receiver');
    await edit.getByRole('button', { name: 'Save endpoint' }).click();
    await page.getByRole('list', { name: 'Endpoints' }).getByText(/renamed receiver/).first().waitFor();
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Delete renamed receiver' }).click();
    await page.getByText('No webhook endpoints yet.').waitFor();

    const secret = `whsec_${Buffer.alloc(32, 7).toString('base64')}`;
    const form = page.getByRole('form', { name: 'Add an inbound source' });
    await form.getByLabel('Source name').fill('billing events');
    await form.getByLabel(/Provider signing secret/).fill(secret);
    await form.getByRole('button', { name: 'Add source' }).click();
    await page.getByRole('list', { name: 'Inbound sources' }).getByText('billing events', { exact: true }).waitFor();
    expect(await page.content()).not.toContain(secret);
    expect(await seriousViolations(page)).toEqual([]);
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Delete billing events' }).click();
    await page.getByText('No inbound sources yet.').waitFor();
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('a viewer sees no webhook page nor any create button', async () => {
    const { page } = await c.newPage();
    const viewer = c.h.user('acme', 'viewer');
    const orgId = c.h.orgId('acme');
    await signInAs(page, viewer.email, viewer.password);
    await page.getByRole('banner').getByText(viewer.email).waitFor();
    await page.goto(`/orgs/${orgId}/webhooks`);
    await page.getByRole('main').waitFor();
    await settled(page);
    expect(await page.getByRole('link', { name: 'Webhooks' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /Add endpoint|Add source|Create key/ }).count()).toBe(0);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });
});
