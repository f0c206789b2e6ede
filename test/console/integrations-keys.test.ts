import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness, settled } from './browser.js';
import { audit } from '../support/evidence.js';

describe('console API keys in Chromium', () => {
  let c: ConsoleHarness;
  beforeAll(async () => {
    c = await startConsole('pglite');
  });
  afterAll(async () => {
    await c.close();
  });

  it('owner creates a key, sees the token once, uses it, revokes it; audit has both events', async () => {
    const { page } = await c.newPage();
    const owner = c.h.user('acme', 'owner');
    const orgId = c.h.orgId('acme');
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    await page.goto(`/orgs/${orgId}/api-keys`);
    await page.getByRole('heading', { name: 'Create an API key' }).waitFor();
    await page.getByRole('textbox', { name: 'Name', exact: true }).fill('ci key');
    await page.getByRole('checkbox', { name: /org:read/ }).check();
    await page.getByRole('button', { name: 'Create key' }).click();
    const shown = page.getByRole('region', { name: 'The API key token' });
    await shown.getByText('shown only this once').waitFor();
    await shown.getByRole('button', { name: 'Copy' }).waitFor();
    const token = (await shown.getByTestId('secret-value').textContent()) ?? '';
    expect(token).toMatch(/^pal_sk_/);
    await page.getByRole('list', { name: 'API keys' }).getByText('ci key', { exact: true }).waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    const whoami = () => c.h.built.app.inject({ method: 'GET', url: `/v1/orgs/${orgId}/key`, headers: { authorization: `Bearer ${token}` } });
    expect((await whoami()).statusCode).toBe(200);

    await page.reload();
    await page.getByRole('list', { name: 'API keys' }).getByText('ci key', { exact: true }).waitFor();
    expect(await page.getByTestId('secret-value').count()).toBe(0);
    expect(await page.content()).not.toContain(token);

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Revoke ci key' }).click();
    await page.getByRole('list', { name: 'API keys' }).getByText(/secret, revoked/).waitFor();
    expect((await whoami()).statusCode).toBe(401);
    expect(await audit(c.h, orgId, 'api_key.created')).not.toEqual([]);
    expect(await audit(c.h, orgId, 'api_key.revoked')).not.toEqual([]);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('offers a member only the scopes the member holds and an API key may carry', async () => {
    const { page } = await c.newPage();
    const member = c.h.user('acme', 'member');
    const orgId = c.h.orgId('acme');
    await signInAs(page, member.email, member.password);
    await page.getByRole('banner').getByText(member.email).waitFor();
    await page.goto(`/orgs/${orgId}/api-keys`);
    await page.getByRole('heading', { name: 'Create an API key' }).waitFor();
    await page.getByRole('checkbox').first().waitFor();
    const offered = await page.getByRole('group', { name: 'Scopes' }).locator('code').allTextContents();
    const me = await c.h.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie: await c.h.cookieFor(member.email) } });
    const held = (me.json() as { orgs: { id: string; permissions: string[] }[] }).orgs.find((o) => o.id === orgId)?.permissions ?? [];
    expect(offered.length).toBeGreaterThan(0);
    for (const p of offered) expect(held).toContain(p);
    expect(offered).not.toContain('keys:manage');
    expect(await seriousViolations(page)).toEqual([]);
  });

  it('shows a viewer no create form when the viewer may not create keys', async () => {
    const { page } = await c.newPage();
    const viewer = c.h.user('acme', 'viewer');
    const orgId = c.h.orgId('acme');
    await signInAs(page, viewer.email, viewer.password);
    await page.getByRole('banner').getByText(viewer.email).waitFor();
    await page.goto(`/orgs/${orgId}/api-keys`);
    await page.getByRole('main').waitFor();
    await settled(page);
    expect(await page.getByRole('button', { name: 'Create key' }).count()).toBe(0);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });
});
