import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BrowserContext, Page } from 'playwright-core';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness } from './browser.js';
import { passwordUser } from '../support/users.js';

/** Chromium's virtual authenticator (CTAP2, platform, resident keys, user verified) for this page. */
async function virtualAuthenticator(context: BrowserContext, page: Page): Promise<void> {
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: { protocol: 'ctap2', transport: 'internal', hasResidentKey: true, hasUserVerification: true, isUserVerified: true },
  });
}

async function actions(c: ConsoleHarness, userId: string, action: string): Promise<number> {
  const rows = await c.h.t.owner.query<{ n: number }>('select count(*)::int as n from audit_events where actor_id = $1 and action = $2', [userId, action]);
  return Number(rows[0]?.n ?? 0);
}

describe('account: passkeys in Chromium', () => {
  let c: ConsoleHarness;
  beforeAll(async () => {
    c = await startConsole('pglite');
  });
  afterAll(async () => {
    await c.close();
  });

  it('adds a passkey with the virtual authenticator, renames it, signs in with it, and removes it after a passkey step-up', async () => {
    const user = await passwordUser(c.h, c.h.orgId('acme'), 'member');
    const { page, context } = await c.newPage();
    await virtualAuthenticator(context, page);
    await signInAs(page, user.email, user.password);
    await page.getByRole('banner').getByText(user.email).waitFor();

    await page.goto('/account/passkeys');
    await page.getByText('No passkeys yet.').waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByLabel('Passkey name').fill('Laptop');
    await page.getByRole('button', { name: 'Add passkey' }).click();
    await page.getByRole('list', { name: 'Passkeys' }).getByText('Laptop').waitFor();
    expect(await actions(c, user.id, 'auth.passkey_added')).toBe(1);

    await page.getByRole('button', { name: 'Rename Laptop' }).click();
    await page.getByLabel('New name for Laptop').fill('Work laptop');
    await page.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('button', { name: 'Rename Work laptop' }).waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    expect(await actions(c, user.id, 'auth.passkey_renamed')).toBe(1);

    // Signed out, the passkey alone signs in (a discoverable credential: no email typed).
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in to Palisade' }).waitFor();
    await page.getByRole('button', { name: 'Sign in with a passkey' }).click();
    await page.getByRole('banner').getByText(user.email).waitFor();

    // Past the step-up window, removing asks for proof: the passkey itself, in the dialog.
    c.h.clock.advance(11 * 60_000);
    await page.goto('/account/passkeys');
    await page.getByRole('button', { name: 'Remove Work laptop' }).click();
    const dialog = page.getByRole('dialog', { name: 'Confirm it is you' });
    await dialog.waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await dialog.getByRole('button', { name: 'Use a passkey' }).click();
    await page.getByText('No passkeys yet.').waitFor();
    expect(await actions(c, user.id, 'auth.passkey_removed')).toBe(1);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });
});
