import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { sql } from 'kysely';
import { newId } from '../../src/crypto/index.js';
import { personColumns, personOf } from '../../src/domains/identity/people.js';
import { call } from '../support/client.js';
import { nextCode } from '../support/mfa.js';
import { rsaSigningKey, startOidcProvider, type IdpAccount, type LoopbackIdp } from '../support/oidc.js';
import { passwordUser } from '../support/users.js';
import { seriousViolations, startConsole, type ConsoleHarness } from './browser.js';

const SECRET = 'canary-console-sso-secret-7d1e';

/**
 * Single sign-on through the console, all the way: Chromium leaves the sign-in page for a real
 * OpenID Provider on loopback, signs in there, and comes back signed in, or (an account with a
 * second factor) to the second step through the handover code, which must survive the trip.
 */
describe('sign-in: single sign-on in Chromium', () => {
  let c: ConsoleHarness;
  let idp: LoopbackIdp;
  let domain: string;
  const accounts = new Map<string, IdpAccount>();
  const api = (method: 'POST' | 'PATCH', url: string, cookie: string, payload: object) => call(c.h, method, url, { cookie, payload, headers: { origin: c.origin } });

  beforeAll(async () => {
    c = await startConsole('pglite', { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' });
    idp = await startOidcProvider({
      clients: [{ client_id: 'console', client_secret: SECRET, redirect_uris: [`${c.origin}/api/auth/sso/oidc/callback`] }],
      accounts,
      keys: [rsaSigningKey('k1')],
    });
    const acme = c.h.orgId('acme');
    domain = `console-sso-${newId().slice(0, 8)}.example`;
    // The domain's DNS proof is domains.test.ts's subject: here it is on record as verified.
    const ownerId = await c.h.userId(c.h.user('acme', 'owner').email);
    await c.h.t.owner.query('insert into org_domains (org_id, id, domain, record_value, created_by, created_at, verified_at) values ($1, $2, $3, $4, $5, now(), now())', [
      acme, newId(), domain, 'palisade-verification=test', ownerId,
    ]);
    await c.h.t.owner.query('insert into verified_domains (domain, org_id) values ($1, $2)', [domain, acme]);
    const cookie = await c.h.cookieFor(c.h.user('acme', 'owner').email);
    const created = await api('POST', `/api/orgs/${acme}/sso/connections`, cookie, { kind: 'oidc', name: 'Corp IdP', issuer: idp.issuer, clientId: 'console', clientSecret: SECRET, jitRole: 'member' });
    expect(created.statusCode, created.body).toBe(201);
    const on = await api('PATCH', `/api/orgs/${acme}/sso/connections/${created.json<{ id: string }>().id}`, cookie, { enabled: true });
    expect(on.statusCode, on.body).toBe(200);
  });
  afterAll(async () => {
    await c?.close();
    await idp?.close();
  });

  /** From the console's sign-in page through the IdP's own login and consent pages, back to the console. */
  async function viaIdp(page: Page, account: IdpAccount): Promise<void> {
    await page.goto('/sign-in');
    await page.getByRole('button', { name: 'Sign in with SSO' }).click();
    await page.getByRole('form', { name: 'Single sign-on' }).getByLabel('Work email').fill(account.email ?? '');
    await page.getByRole('button', { name: 'Continue with SSO' }).click();
    await page.waitForURL((u) => u.href.startsWith(idp.issuer));
    await page.locator('input[name="login"]').fill(account.sub);
    await page.locator('input[name="password"]').fill('any');
    await page.locator('button[type="submit"]').click();
    // oidc-provider's development consent page, then the redirect back to Palisade.
    await page.locator('button[type="submit"]').click();
    await page.waitForURL((u) => u.href.startsWith(c.origin));
  }

  it('a new person at the org\u2019s domain signs in at the IdP and lands in the console, a member', async () => {
    const sub = `sub-${newId()}`;
    const person = { sub, email: `grace-${sub.slice(4, 12)}@${domain}`, email_verified: true, name: 'Grace Hopper' };
    accounts.set(sub, person);
    const { page } = await c.newPage();
    await viaIdp(page, person);
    await page.getByRole('banner').getByText(person.email).waitFor();
    expect(new URL(page.url()).search).toBe('');
    expect(await seriousViolations(page)).toEqual([]);
    const [member] = await c.h.t.owner.query<{ role: string }>('select role from memberships where user_id = $1', [await c.h.userId(person.email)]);
    expect(member?.role).toBe('member');
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('an account with an authenticator app comes back to the second step, the handover code gone from the address bar', async () => {
    const user = await passwordUser(c.h, c.h.orgId('acme'));
    const email = `mfa-${newId().slice(0, 6)}@${domain}`;
    // The address is sealed and indexed (migration 039): moved to the domain as the app writes one.
    await c.h.t.db.withSystem('test: move an address', async (tx) => {
      const sealer = c.h.built.services.sealer;
      const cols = await personColumns(sealer, tx, user.id, { email, name: (await personOf(sealer, tx, user.id))?.name ?? '' });
      await sql`update users set email_sealed = ${cols.email_sealed}, name_sealed = ${cols.name_sealed}, email_index = ${cols.email_index},
                email_domain_index = ${cols.email_domain_index} where id = ${user.id}`.execute(tx);
    });
    const cookie = await c.h.cookieFor(email);
    const started = await api('POST', '/api/me/mfa/totp', cookie, {});
    expect(started.statusCode, started.body).toBe(201);
    const secret = started.json<{ secret: string }>().secret;
    const confirmed = await api('POST', '/api/me/mfa/totp/confirm', cookie, { code: nextCode(c.h, secret) });
    expect(confirmed.statusCode, confirmed.body).toBe(200);
    const sub = `sub-${newId()}`;
    accounts.set(sub, { sub, email, email_verified: true });
    const { page } = await c.newPage();
    await viaIdp(page, { sub, email });
    const code = page.getByLabel('Code from your authenticator app');
    await code.waitFor();
    // The single-use code left the URL (and so the history and any Referer) before it was spent.
    expect(new URL(page.url()).searchParams.has('sso_handover')).toBe(false);
    await code.fill(nextCode(c.h, secret));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.getByRole('banner').getByText(email).waitFor();
    const [spent] = await c.h.t.owner.query<{ n: number }>('select count(*)::int as n from sso_handovers where user_id = $1 and used_at is not null', [user.id]);
    expect(spent?.n).toBe(1);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });
});
