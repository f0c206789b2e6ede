import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signInAs, startConsole, type ConsoleHarness, settled } from './browser.js';

// Each would run script if the console ever turned server text into markup, or if the CSP let an
// inline script or handler run: every one of them sets the same flag in the page.
const PAYLOADS = [
  '<img src=x onerror="window.__pwned=1">',
  '<script>window.__pwned=1</script>',
  '"><svg onload="window.__pwned=1">',
];

/**
 * Script tags and handlers stored through the free-text fields the console shows (org, project,
 * role and key names, descriptions, webhook descriptions, integration credential descriptions,
 * rotation reasons and use-log messages), then every page the owner can open is visited: the text
 * shows as text and nothing runs.
 */
describe('the console never runs script stored in free-text fields', () => {
  let c: ConsoleHarness;
  beforeAll(async () => {
    c = await startConsole('pglite');
  });
  afterAll(async () => {
    await c.close();
  });

  it('shows injected markup as text on every page, and no script from it runs', async () => {
    const owner = c.h.user('acme', 'owner');
    const orgId = c.h.orgId('acme');
    const cookie = await c.h.cookieFor(owner.email);
    const send = async (method: 'POST' | 'PATCH', url: string, payload: object) => {
      const res = await c.h.built.app.inject({ method, url, payload, headers: { cookie, origin: c.origin } });
      expect(res.statusCode, `${method} ${url}: ${res.body}`).toBeLessThan(300);
    };
    const [a, b, d] = PAYLOADS as [string, string, string];
    await send('PATCH', `/api/orgs/${orgId}`, { name: `Acme ${a}` });
    await send('POST', `/api/orgs/${orgId}/projects`, { name: `P ${b}` });
    await send('POST', `/api/orgs/${orgId}/roles`, { name: `R ${d}`.slice(0, 60), description: `${a} ${b}`, permissions: ['projects:read'] });
    await send('POST', `/api/orgs/${orgId}/api-keys`, { name: `K ${a}`.slice(0, 60), kind: 'secret', permissions: ['projects:read'] });
    await send('POST', `/api/orgs/${orgId}/webhooks`, { url: 'https://hooks.example.com/in', events: ['*'], description: `${b} ${d}` });
    // Credential names are a closed charset; the free text is the description, the reason and the host's use report.
    const made = await c.h.built.app.inject({
      method: 'POST', url: `/api/orgs/${orgId}/integrations/credentials`, headers: { cookie, origin: c.origin },
      payload: { name: 'psa', kind: 'api_token', description: `${a} ${d}`.slice(0, 200), secret: 'csp-test-value' },
    });
    expect(made.statusCode, made.body).toBe(201);
    await send('POST', `/api/orgs/${orgId}/integrations/credentials/${made.json<{ id: string }>().id}/replace`, { secret: 'csp-test-value-2', reason: b });
    await c.h.built.services.vault.use(orgId, 'psa', { by: 'csp-test' }, async (_s, r) => r.note(`${d} ${a}`));

    const { page } = await c.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (dlg) => {
      dialogs.push(dlg.message());
      void dlg.dismiss();
    });
    await signInAs(page, owner.email, owner.password);
    // Signed in once the console shows its sign-out button (Playwright's wait, not expect.poll's
    // one second: a loaded machine takes longer to hash the password and land).
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    await expect.poll(() => page.url()).toContain(`/orgs/${orgId}/`);
    const links = await page.getByRole('navigation', { name: 'Console' }).getByRole('link').evaluateAll((as) => as.map((x) => x.getAttribute('href') ?? ''));
    expect(links.length).toBeGreaterThan(3);
    for (const href of links) {
      await page.goto(href);
      await page.getByRole('heading', { level: 1 }).waitFor();
      await settled(page);
      const pwned = await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned ?? 0);
      expect(pwned, href).toBe(0);
    }
    // The credential's logs open on demand: open both, then look again.
    await page.goto(`/orgs/${orgId}/credentials`);
    await page.getByRole('button', { name: 'Use log of psa' }).click();
    await page.getByRole('list', { name: 'Use log' }).getByText(d, { exact: false }).waitFor();
    await page.getByRole('button', { name: 'Rotation history of psa' }).click();
    await page.getByRole('list', { name: 'Rotation history' }).getByText(b, { exact: false }).waitFor();
    await page.getByRole('list', { name: 'Credentials' }).getByText(a, { exact: false }).waitFor();
    expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned ?? 0)).toBe(0);
    // The org's name heads the navigation of its pages: as the characters typed, not as an element.
    await page.goto(links.find((l) => l.startsWith('/orgs/')) ?? '/');
    await page.getByRole('navigation', { name: 'Console' }).getByRole('heading', { name: `Acme ${a}` }).waitFor();
    expect(dialogs).toEqual([]);
  });
});
