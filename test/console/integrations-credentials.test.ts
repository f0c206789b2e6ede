import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness, settled } from './browser.js';
import { audit } from '../support/evidence.js';

const VALUE = 'CANARY-console-vault-5f2a9d1e';
const ROTATED = 'CANARY-console-rotated-7b3e0c44';

describe('console integration credentials in Chromium', () => {
  let c: ConsoleHarness;
  beforeAll(async () => {
    c = await startConsole('pglite');
  });
  afterAll(async () => {
    await c.close();
  });

  it('owner adds a credential (the value never shown again), host code uses it, owner replaces it after a step-up, reads history and log, deletes it', async () => {
    const { page } = await c.newPage();
    const owner = c.h.user('acme', 'owner');
    const orgId = c.h.orgId('acme');
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Credentials' }).click();
    const form = page.getByRole('form', { name: 'Add a credential' });
    await form.getByRole('textbox', { name: 'Name' }).fill('connectwise');
    await form.getByLabel('Kind').selectOption('api_token');
    await form.getByRole('textbox', { name: 'Description' }).fill('PSA ticket sync');
    const value = form.getByLabel('Value');
    expect(await value.getAttribute('type')).toBe('password');
    await value.fill(VALUE);
    // Typed, not yet sent: the value lives in the field's state only, never in the DOM (an
    // attribute is what CSS selectors, DOM snapshots and extensions read).
    expect(await page.content()).not.toContain(VALUE);
    await form.getByRole('button', { name: 'Add credential' }).click();
    const list = page.getByRole('list', { name: 'Credentials' });
    await list.getByText('connectwise', { exact: true }).waitFor();
    expect(await value.inputValue()).toBe('');
    expect(await page.content()).not.toContain(VALUE);
    expect(await seriousViolations(page)).toEqual([]);

    // The host app opens it by name; the console shows the count and the log, never the value.
    await c.h.built.services.vault.use(orgId, 'connectwise', { by: 'psa-sync' }, async (_s, r) => r.note('synced 12 tickets'));
    await page.reload();
    await list.getByText(/used 1 time\(s\)/).waitFor();
    await page.getByRole('button', { name: 'Use log of connectwise' }).click();
    await page.getByRole('list', { name: 'Use log' }).getByText(/#1 ok .* synced 12 tickets/).waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    // Past the step-up window: replacing asks for the password again, then goes through.
    c.h.clock.advance(11 * 60_000);
    await page.getByRole('button', { name: 'Replace connectwise' }).click();
    const replace = page.getByRole('form', { name: 'Replace connectwise' });
    await replace.getByLabel('New value').fill(ROTATED);
    await replace.getByRole('textbox', { name: 'Reason' }).fill('vendor rotated the token');
    await replace.getByRole('button', { name: 'Replace value' }).click();
    const dialog = page.getByRole('dialog', { name: 'Confirm it is you' });
    await dialog.getByLabel('Your password').fill(owner.password);
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await list.getByText(/Version 2/).waitFor();
    expect(await c.h.built.services.vault.use(orgId, 'connectwise', { by: 'psa-sync' }, async (s) => s)).toBe(ROTATED);
    await page.getByRole('button', { name: 'Rotation history of connectwise' }).click();
    const history = page.getByRole('list', { name: 'Rotation history' });
    await history.getByText(/Version 2: replaced .* vendor rotated the token/).waitFor();
    await history.getByText(/Version 1: created/).waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    const html = await page.content();
    expect(html).not.toContain(VALUE);
    expect(html).not.toContain(ROTATED);

    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Delete connectwise' }).click();
    await page.getByText('No integration credentials yet.').waitFor();
    await expect(c.h.built.services.vault.use(orgId, 'connectwise', { by: 'psa-sync' }, async (s) => s)).rejects.toMatchObject({ code: 'not_found' });
    for (const action of ['credential.created', 'credential.used', 'credential.replaced', 'credential.deleted']) {
      expect(await audit(c.h, orgId, action), action).not.toEqual([]);
    }
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('hides the page from a viewer and a member, and shows a reader the credentials and their logs without any write action', async () => {
    const orgId = c.h.orgId('acme');
    const cookie = await c.h.cookieFor(c.h.user('acme', 'owner').email);
    const post = async (url: string, payload: object) => {
      const res = await c.h.built.app.inject({ method: 'POST', url, headers: { cookie, origin: c.origin }, payload });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ id: string }>();
    };
    await post(`/api/orgs/${orgId}/integrations/credentials`, { name: 'datto-rmm', kind: 'password', secret: VALUE });
    for (const role of ['viewer', 'member'] as const) {
      const { page } = await c.newPage();
      const who = c.h.user('acme', role);
      await signInAs(page, who.email, who.password);
      await page.getByRole('banner').getByText(who.email).waitFor();
      expect(await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Credentials' }).count(), role).toBe(0);
      await page.goto(`/orgs/${orgId}/credentials`);
      await page.getByRole('alert').getByText(/not available to you/).waitFor();
      expect(await page.getByText('datto-rmm').count(), role).toBe(0);
    }

    // A custom role granting credentials:read alone, held by a member who signs in through the form.
    const role = await post(`/api/orgs/${orgId}/roles`, { name: 'Integration auditor', permissions: ['org:read', 'credentials:read'] });
    const member = c.h.user('acme', 'member');
    const memberId = await c.h.userId(member.email);
    const changed = await c.h.built.app.inject({
      method: 'PATCH', url: `/api/orgs/${orgId}/members/${memberId}`, headers: { cookie, origin: c.origin }, payload: { role: 'custom', customRoleId: role.id },
    });
    expect(changed.statusCode, changed.body).toBe(204);
    await c.h.built.services.vault.use(orgId, 'datto-rmm', { by: 'rmm-sync' }, async (_s, r) => r.fail('RMM answered 503'));
    const { page } = await c.newPage();
    await signInAs(page, member.email, member.password);
    await page.getByRole('banner').getByText(member.email).waitFor();
    await page.goto(`/orgs/${orgId}/credentials`);
    await page.getByRole('list', { name: 'Credentials' }).getByText('datto-rmm', { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Use log of datto-rmm' }).click();
    await page.getByRole('list', { name: 'Use log' }).getByText(/#1 failed .* RMM answered 503/).waitFor();
    await settled(page);
    expect(await page.getByRole('form', { name: 'Add a credential' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: /^(Replace|Delete) / }).count()).toBe(0);
    expect(await page.content()).not.toContain(VALUE);
    expect(await seriousViolations(page)).toEqual([]);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });
});
