import axe from 'axe-core';
import { chromium, type Browser, type BrowserContext, type Locator, type Page, type Response } from 'playwright-core';
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
      trackInflight(page);
      return { context, page };
    },
    async close() {
      for (const c of contexts) await c.close().catch(() => undefined);
      await browser.close();
      await h.close();
    },
  };
}

const inflight = new WeakMap<Page, { count: number; changed: number }>();

function trackInflight(page: Page): void {
  const state = { count: 0, changed: Date.now() };
  inflight.set(page, state);
  const start = () => { state.count++; state.changed = Date.now(); };
  const end = () => { state.count = Math.max(0, state.count - 1); state.changed = Date.now(); };
  page.on('request', start);
  page.on('requestfinished', end);
  page.on('requestfailed', end);
}

/**
 * Waits until the page has had no request in flight for `quietMs`: what Playwright's
 * `networkidle` does with a fixed 500 ms window, which cost the walk half a second per page.
 */
export async function settled(page: Page, quietMs = 100): Promise<void> {
  const state = inflight.get(page);
  if (!state) return page.waitForLoadState('networkidle');
  const deadline = Date.now() + 15_000;
  while (state.count > 0 || Date.now() - state.changed < quietMs) {
    if (Date.now() > deadline) throw new Error(`the page still had ${state.count} requests in flight after 15 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Signs in through the console's own form, as a person would. */
export async function signInAs(page: Page, email: string, password: string): Promise<void> {
  await page.goto('/sign-in');
  const form = page.getByRole('form', { name: 'Sign in with a password' });
  await form.getByLabel('Email').fill(email);
  await form.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
}

// The page's global object, as the functions given to page.evaluate see it (no DOM types here).
type AxeWindow = { axe?: typeof axe };

/**
 * axe-core's serious and critical findings on the page as it is now (the bar: none). axe runs in
 * the page itself, injected once per document, with every rule it runs by default: about 0.4 s a
 * page, where @axe-core/playwright's analyze() took 1.6 s (it opens a second page to finish each
 * run, for frames the console does not have). A frame would go unchecked here, so one fails.
 */
export async function seriousViolations(page: Page): Promise<string[]> {
  if (page.frames().length !== 1) throw new Error('the page has frames: seriousViolations checks only the main document');
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.evaluate(axe.source);
  const violations = await page.evaluate(async () => {
    const engine = (globalThis as AxeWindow).axe;
    if (!engine) throw new Error('axe-core did not load');
    return (await engine.run({ resultTypes: ['violations'] })).violations.map((v) => ({ id: v.id, help: v.help, impact: v.impact ?? null, nodes: v.nodes.length }));
  });
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.help} (${v.nodes})`);
}

/**
 * Answers the step-up dialog with `password` if it opens before the action's outcome `done`
 * reaches `state` (a session past its step-up window is asked; a fresh one is not): whichever
 * comes first, so a fresh step-up costs no waiting.
 */
export async function stepUpIfAsked(page: Page, password: string, done: Locator, state: 'visible' | 'detached' = 'visible'): Promise<void> {
  const dialog = page.getByRole('dialog', { name: 'Confirm it is you' });
  if (await Promise.race([dialog.waitFor().then(() => true), done.waitFor({ state }).then(() => false)])) {
    await dialog.getByLabel('Your password').fill(password);
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    await dialog.waitFor({ state: 'hidden' });
  }
}
