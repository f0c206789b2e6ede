import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness } from './browser.js';

describe('governance: single sign-on in Chromium', () => {
  let c: ConsoleHarness;
  let orgId: string;
  beforeAll(async () => {
    c = await startConsole('pglite');
    orgId = c.h.orgId('acme');
  });
  afterAll(async () => {
    await c.close();
  });

  it('claims a domain and shows the DNS record that verifies it; an OIDC connection with bad fields is refused field by field', async () => {
    const { page } = await c.newPage();
    const owner = c.h.user('acme', 'owner');
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    await page.goto(`/orgs/${orgId}/sso`);
    await page.getByLabel('Domain to claim').fill('claimed-example.com');
    await page.getByRole('button', { name: 'Claim domain' }).click();
    const record = page.getByRole('definition').filter({ hasText: '_palisade-verification.claimed-example.com' });
    await record.waitFor();
    expect(await page.getByRole('button', { name: 'Verify claimed-example.com' }).count()).toBe(1);
    expect(await seriousViolations(page)).toEqual([]);

    const form = page.getByRole('form', { name: 'New SSO connection' });
    await form.getByLabel('Name').fill('Corp IdP');
    await form.getByLabel('Issuer URL').fill('https://idp.example.com/with space');
    await form.getByLabel('Client ID').fill('client with spaces');
    await form.getByLabel('Client secret').fill('s3cret');
    await form.getByRole('button', { name: 'Create connection' }).click();
    // Each field shows the server's own complaint under it (aria-describedby).
    await expect.poll(() => form.getByLabel('Issuer URL').getAttribute('aria-invalid')).toBe('true');
    expect(await form.getByLabel('Client ID').getAttribute('aria-invalid')).toBe('true');
    await form.getByText('printable ASCII without spaces, at most 255 characters').first().waitFor();
    expect(await form.getByLabel('Name').getAttribute('aria-invalid')).toBeNull();
    expect(await seriousViolations(page)).toEqual([]);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('a viewer has no single sign-on page', async () => {
    const { page } = await c.newPage();
    const viewer = c.h.user('acme', 'viewer');
    await signInAs(page, viewer.email, viewer.password);
    await page.getByRole('banner').getByText(viewer.email).waitFor();
    expect(await page.getByRole('navigation').getByRole('link', { name: 'Single sign-on' }).count()).toBe(0);
    await page.goto(`/orgs/${orgId}/sso`);
    await page.getByRole('alert').getByText(/This page is not available to you/).waitFor();
  });
});
