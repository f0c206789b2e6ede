import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdirSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness, settled } from './browser.js';

// `UPDATE_SCREENSHOTS=1 npx vitest run test/console/walk.test.ts` refreshes the README's pictures
// (docs/console/) from the owner's walk; a plain test run leaves the tree as it is.
const SHOTS = process.env.UPDATE_SCREENSHOTS === '1' ? 'docs/console' : null;

const ROLES = ['owner', 'admin', 'member', 'viewer', 'project_viewer', 'restricted_member'] as const;
// axe runs where the markup differs in kind: the owner's pages carry every control, the viewer's
// the read-only forms, the project viewer's the project-scoped lists. The other roles see subsets
// of the owner's controls on the same components (checked for 5xx and availability), and axe's
// ~0.7 s a page across them cost the suite half a minute.
const AXE_ROLES: readonly string[] = ['owner', 'viewer', 'project_viewer'];

/** The console's org pages the navigation offers on the current page, as paths without the org. */
async function navPages(page: Page, orgId: string): Promise<string[]> {
  const links = await page.getByRole('navigation', { name: 'Console' }).getByRole('link').evaluateAll((as) => as.map((a) => a.getAttribute('href') ?? ''));
  return links.filter((h) => h.startsWith(`/orgs/${orgId}/`)).map((h) => h.slice(`/orgs/${orgId}/`.length));
}

async function accountPages(page: Page): Promise<string[]> {
  const links = await page.getByRole('navigation', { name: 'Console' }).getByRole('link').evaluateAll((as) => as.map((a) => a.getAttribute('href') ?? ''));
  return links.filter((h) => h.startsWith('/account/'));
}

/**
 * Every page as every demo role of acme: each page the navigation offers opens without a 5xx (and,
 * for AXE_ROLES, with no serious accessibility finding); each org page it does not offer (the owner sees them
 * all) says it is not available when opened by its address.
 */
describe('the console walked as every demo role', () => {
  let c: ConsoleHarness;
  let acme: string;
  let all: string[] = [];
  beforeAll(async () => {
    c = await startConsole('pglite');
    acme = c.h.orgId('acme');
  });
  afterAll(async () => {
    await c.close();
  });

  it.each(ROLES)('as %s', async (role) => {
    const who = c.h.user('acme', role);
    const { page } = await c.newPage();
    await signInAs(page, who.email, who.password);
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    // Signing in lands on the first page of the viewer's first org (acme: they belong to no other).
    await expect.poll(() => page.url()).toContain(`/orgs/${acme}/`);
    await page.getByRole('heading', { level: 1 }).waitFor();
    const mine = await navPages(page, acme);
    if (role === 'owner') all = mine;
    expect(mine.length).toBeGreaterThan(0);
    const before = c.answers.length;
    for (const path of [...mine.map((p) => `/orgs/${acme}/${p}`), ...(await accountPages(page))]) {
      await page.goto(path);
      await page.getByRole('heading', { level: 1 }).waitFor();
      await settled(page);
      expect(await page.getByText('not available to you').count(), path).toBe(0);
      if (AXE_ROLES.includes(role)) expect(await seriousViolations(page), `${role} ${path}`).toEqual([]);
      if (SHOTS && role === 'owner') {
        mkdirSync(SHOTS, { recursive: true });
        const name = path.replace(`/orgs/${acme}/`, '').replace('/account/', 'account-').replace(/[^a-z0-9-]/g, '-');
        await page.setViewportSize({ width: 1100, height: 700 });
        await page.screenshot({ path: `${SHOTS}/${name}.jpeg`, type: 'jpeg', quality: 55 });
      }
    }
    for (const hidden of all.filter((p) => !mine.includes(p))) {
      await page.goto(`/orgs/${acme}/${hidden}`);
      await page.getByText('not available to you').waitFor();
    }
    expect(c.answers.slice(before).filter((a) => a.status >= 500)).toEqual([]);
  });

  it('its accessibility check finds what it looks for (a button with no name, an image with no text)', async () => {
    const { page } = await c.newPage();
    await page.goto('/sign-in');
    await page.getByRole('heading', { level: 1 }).waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await page.evaluate(() => {
      const doc = (globalThis as unknown as { document: { body: { insertAdjacentHTML(where: string, html: string): void } } }).document;
      doc.body.insertAdjacentHTML('beforeend', '<button type="button"></button><img src="/nothing.png">');
    });
    const found = await seriousViolations(page);
    expect(found.some((v) => v.startsWith('button-name:'))).toBe(true);
    expect(found.some((v) => v.startsWith('image-alt:'))).toBe(true);
  });
});
