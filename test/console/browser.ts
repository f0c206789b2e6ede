import { AxeBuilder } from '@axe-core/playwright';
import { chromium, type Browser, type BrowserContext, type Page, type Response } from 'playwright-core';
import { freePort } from '../support/redis.js';
import { createTestApp, type TestApp } from '../support/app.js';
import type { Engine } from '../../src/db/database.js';

/** Debian's Chromium (`.ci/run` installs it); Playwright never downloads a browser here. */
export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

export interface ConsoleHarness {
  h: TestApp;
  origin: string;
  browser: Browser;
  /** Every answer of the server a page received, for the "no 5xx" checks. */
  answers: { url: string; status: number }[];
  newPage(): Promise<{ context: BrowserContext; page: Page }>;
  close(): Promise<void>;
}

/**
 * The real server (demo orgs, real database of `engine`) listening on loopback at
 * http://localhost:<port>, so WebAuthn's RP ID is `localhost` and cookies are the documented
 * plain-http development ones; and a headless Chromium to drive the console it serves.
 */
export async function startConsole(engine: Engine = 'pglite', config: Record<string, string> = {}): Promise<ConsoleHarness> {
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const h = await createTestApp(engine, { config: { PUBLIC_ORIGIN: origin, ...config } });
  await h.built.app.listen({ port, host: '127.0.0.1' });
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const answers: { url: string; status: number }[] = [];
  const contexts: BrowserContext[] = [];
  return {
    h,
    origin,
    browser,
    answers,
    async newPage() {
      const context = await browser.newContext({ baseURL: origin });
      contexts.push(context);
      const page = await context.newPage();
      page.on('response', (r: Response) => answers.push({ url: r.url(), status: r.status() }));
      return { context, page };
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => undefined);
      await browser.close();
      await h.close();
    },
  };
}

/** Signs in through the console's own form, as a person would. */
export async function signInAs(page: Page, email: string, password: string): Promise<void> {
  await page.goto('/sign-in');
  const form = page.getByRole('form', { name: 'Sign in with a password' });
  await form.getByLabel('Email').fill(email);
  await form.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** axe-core's serious and critical findings on the page as it is now (the bar: none). */
export async function seriousViolations(page: Page): Promise<string[]> {
  const result = await new AxeBuilder({ page }).analyze();
  return result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help} (${v.nodes.length})`);
}
