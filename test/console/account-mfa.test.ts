import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Secret, TOTP } from 'otpauth';
import type { Page } from 'playwright-core';
import { newId } from '../../src/crypto/index.js';
import { socialIdentityEmailRef } from '../../src/domains/identity/people.js';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness } from './browser.js';
import { passwordUser } from '../support/users.js';
import { call } from '../support/client.js';

// The code an authenticator app would show, computed from the secret the page displayed (the
// server's otpauth settings). The clock moves a step first: a step already used is a replay.
function nextCode(c: ConsoleHarness, secret: string): string {
  c.h.clock.advance(30_000);
  const totp = new TOTP({ algorithm: 'SHA1', digits: 6, period: 30, secret: Secret.fromBase32(secret) });
  return totp.generate({ timestamp: c.h.clock.now().getTime() });
}

async function actions(c: ConsoleHarness, userId: string, action: string): Promise<number> {
  const rows = await c.h.t.owner.query<{ n: number }>('select count(*)::int as n from audit_events where actor_id = $1 and action = $2', [userId, action]);
  return Number(rows[0]?.n ?? 0);
}

async function signOut(page: Page): Promise<void> {
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Sign in to Palisade' }).waitFor();
}

describe('account: two-factor security and sessions in Chromium', () => {
  let c: ConsoleHarness;
  beforeAll(async () => {
    c = await startConsole('pglite');
  });
  afterAll(async () => {
    await c.close();
  });

  it('enrolls an authenticator app, shows recovery codes once, signs in with a code and with a recovery code, steps up, revokes a session', async () => {
    const user = await passwordUser(c.h, c.h.orgId('acme'), 'member');
    const { page } = await c.newPage();
    await signInAs(page, user.email, user.password);
    await page.getByRole('banner').getByText(user.email).waitFor();

    await page.goto('/account/security');
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    const secret = (await page.getByTestId('totp-secret').textContent())?.trim() ?? '';
    expect(secret).toMatch(/^[A-Z2-7]+=*$/);
    expect(await page.getByRole('img', { name: 'QR code for your authenticator app' }).getAttribute('src')).toMatch(/^data:image\//);
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByLabel('Six-digit code from the app').fill(nextCode(c, secret));
    await page.getByRole('button', { name: 'Confirm' }).click();

    const shown = page.getByRole('region', { name: 'Recovery codes' });
    const codes = ((await shown.getByTestId('secret-value').textContent()) ?? '').split('\n').filter(Boolean);
    expect(codes.length).toBe(10);
    await shown.getByRole('button', { name: 'Download' }).waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByRole('button', { name: 'I saved them' }).click();
    await page.reload();
    await page.getByText('Recovery codes left').waitFor();
    // Shown once: after a reload the codes are nowhere on the page.
    expect(await page.content()).not.toContain(codes[0]);
    expect(await actions(c, user.id, 'auth.mfa_enabled')).toBe(1);

    // The second step with a code from the app.
    await signOut(page);
    await signInAs(page, user.email, user.password);
    await page.getByRole('heading', { name: 'Second step' }).waitFor();
    await page.getByLabel('Code from your authenticator app').fill(nextCode(c, secret));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('banner').getByText(user.email).waitFor();

    // And with a recovery code.
    await signOut(page);
    await signInAs(page, user.email, user.password);
    await page.getByRole('button', { name: 'Use a recovery code' }).click();
    await page.getByLabel('Recovery code').fill(codes[0] ?? '');
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('banner').getByText(user.email).waitFor();

    // Past the step-up window, a sensitive action opens the dialog and goes through after it.
    c.h.clock.advance(11 * 60_000);
    await page.goto('/account/security');
    await page.getByText('9', { exact: true }).waitFor();
    await page.getByRole('button', { name: 'Generate new recovery codes' }).click();
    const dialog = page.getByRole('dialog', { name: 'Confirm it is you' });
    await dialog.getByLabel('Code from your authenticator app').fill(nextCode(c, secret));
    await dialog.getByRole('button', { name: 'Confirm' }).click();
    const fresh = ((await page.getByRole('region', { name: 'Recovery codes' }).getByTestId('secret-value').textContent()) ?? '').split('\n').filter(Boolean);
    expect(fresh.length).toBe(10);
    expect(fresh).not.toContain(codes[1]);
    expect(await actions(c, user.id, 'auth.step_up')).toBeGreaterThanOrEqual(1);

    // Another session (another device) is listed and revoked from here.
    const other = await c.h.cookieFor(user.email);
    await page.goto('/account/sessions');
    await page.getByText('This session').waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByRole('button', { name: /^Revoke session/ }).first().click();
    await expect.poll(async () => (await call(c.h, 'GET', '/api/me', { cookie: other })).statusCode).toBe(401);
    await expect.poll(() => page.getByRole('button', { name: /^Revoke session/ }).count()).toBe(0);
    expect((await call(c.h, 'GET', '/api/me', { cookie: other })).statusCode).toBe(401);
    expect(await actions(c, user.id, 'auth.session_revoked')).toBe(1);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('turns the authenticator app off with a code, signs out every other session, unlinks a social identity; every account page is axe clean', async () => {
    const user = await passwordUser(c.h, c.h.orgId('acme'), 'member');
    const { page } = await c.newPage();
    await signInAs(page, user.email, user.password);
    await page.getByRole('banner').getByText(user.email).waitFor();
    await page.goto('/account/security');
    await page.getByRole('button', { name: 'Set up an authenticator app' }).click();
    const secret = (await page.getByTestId('totp-secret').textContent())?.trim() ?? '';
    await page.getByLabel('Six-digit code from the app').fill(nextCode(c, secret));
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.getByRole('button', { name: 'I saved them' }).click();
    await page.getByLabel('Code from your app, or a recovery code').fill(nextCode(c, secret));
    await page.getByRole('button', { name: 'Turn off' }).click();
    await page.getByRole('button', { name: 'Set up an authenticator app' }).waitFor();
    expect(await actions(c, user.id, 'auth.mfa_disabled')).toBe(1);
    // "Sign out all other sessions": every other session ends, this one stays.
    const others = [await c.h.cookieFor(user.email), await c.h.cookieFor(user.email)];
    await page.goto('/account/sessions');
    // The button's name turns to "Working…" at the click: wait for the server's answer, not for that.
    await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/api/me/sessions/revoke-others') && r.status() === 200),
      page.getByRole('button', { name: 'Sign out all other sessions' }).click(),
    ]);
    await page.getByRole('button', { name: 'Sign out all other sessions' }).waitFor({ state: 'detached' });
    for (const cookie of others) expect((await call(c.h, 'GET', '/api/me', { cookie })).statusCode).toBe(401);
    await page.getByText('This session').waitFor();

    // A linked social identity (as a completed link leaves it) is listed and unlinked.
    // The asserted address is sealed to the link's id (migration 039), as the link writes it.
    const linkId = newId();
    const asserted = await c.h.t.db.withSystem('test: seal a social address', (tx) => c.h.built.services.sealer.seal(tx, socialIdentityEmailRef(linkId), 'octo@example.test'));
    await c.h.t.owner.query("insert into social_identities (id, provider, issuer, subject, user_id, email_sealed, linked_at) values ($1, 'github', 'https://github.com', '4242', $2, $3, now())", [linkId, user.id, asserted]);
    await page.goto('/account/social');
    await page.getByText('octo@example.test').waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await page.getByRole('button', { name: 'Unlink github' }).click();
    await page.getByText('No social identities are linked.').waitFor();
    expect(await actions(c, user.id, 'auth.social_identity_unlinked')).toBe(1);

    for (const path of ['/account/passkeys', '/account/social', '/account/sessions', '/account/profile']) {
      await page.goto(path);
      await page.getByRole('heading', { level: 2 }).first().waitFor();
      await page.getByText(/Loading/).waitFor({ state: 'detached' });
      expect(await seriousViolations(page), path).toEqual([]);
    }
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });
});
