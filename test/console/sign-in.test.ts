import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness } from './browser.js';

describe('console sign-in in Chromium', () => {
  let c: ConsoleHarness;
  beforeAll(async () => {
    c = await startConsole('pglite');
  });
  afterAll(async () => {
    await c.close();
  });

  it('serves the sign-in page at / when signed out, under the strict CSP, with nothing the CSP refused', async () => {
    const { page } = await c.newPage();
    const refused: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') refused.push(m.text());
    });
    const res = await page.goto('/');
    expect(res?.status()).toBe(200);
    expect(res?.headers()['content-security-policy']).toContain("script-src 'self'");
    await expect.poll(() => page.url()).toBe(`${c.origin}/sign-in`);
    await page.getByRole('heading', { name: 'Sign in to Palisade' }).waitFor();
    // Only the 401 of GET /api/me (signed out) may be logged: no CSP violation, no script error.
    expect(refused.filter((t) => !t.includes('401'))).toEqual([]);
    expect(await seriousViolations(page)).toEqual([]);
  });

  it('shows a wrong password in words and stays signed out', async () => {
    const { page, context } = await c.newPage();
    const owner = c.h.user('acme', 'owner');
    await signInAs(page, owner.email, 'not-the-password');
    await page.getByRole('alert').getByText('Invalid credentials').waitFor();
    expect((await context.cookies()).some((k) => k.name.includes('session'))).toBe(false);
  });

  it('signs in with a password into an HttpOnly cookie, keeps nothing in storage, and signs out', async () => {
    const { page, context } = await c.newPage();
    const owner = c.h.user('acme', 'owner');
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    const session = (await context.cookies()).find((k) => k.name.includes('session'));
    expect(session?.httpOnly).toBe(true);
    // Runs in the page: the browser's storages, named through globalThis (tests compile without the DOM library).
    const stored = await page.evaluate(() => { const g = globalThis as unknown as Record<'localStorage' | 'sessionStorage', object>; return JSON.stringify({ ...g.localStorage }) + JSON.stringify({ ...g.sessionStorage }); });
    expect(stored).toBe('{}{}');
    expect(page.url()).not.toContain('token');
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Palisade' }).waitFor();
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });
});

describe('console problems in words', () => {
  let c: ConsoleHarness;
  beforeAll(async () => {
    c = await startConsole('pglite');
  });
  afterAll(async () => {
    await c.close();
  });

  it('names the field the server refused, next to it', async () => {
    const { page } = await c.newPage();
    await page.goto('/sign-up');
    // A name longer than the schema allows: the server's validation names body.name.
    await page.getByLabel('Name').fill('N'.repeat(150));
    await page.getByLabel('Email').fill('new.person@example.com');
    await page.getByLabel('Password').fill('a sufficiently long passphrase 42');
    await page.getByRole('button', { name: 'Create account' }).click();
    const name = page.getByLabel('Name');
    await expect.poll(() => name.getAttribute('aria-invalid')).toBe('true');
    const note = await name.getAttribute('aria-describedby');
    expect(await page.locator(`[id="${note}"]`).textContent()).toMatch(/\S/);
    expect(await page.getByLabel('Password').getAttribute('aria-invalid')).toBeNull();
  });
});
