import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, RELAXED_LIMITS, type Problem, type TestApp } from '../../../test/support/app.js';
import {
  latestVerificationToken, mailTo, register, resendVerification, signUp, verificationTokens, verifyEmail,
} from '../../../test/support/accounts.js';
import { client } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId } from '../../crypto/index.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { auditSelect } from '../../../test/support/evidence.js';

const DAY = 24 * 3600 * 1000;
const ATTACKER_PASSWORD = 'attacker-chosen-passphrase-1';
const OWNER_PASSWORD = 'the-mailbox-owners-passphrase-2';
const RESET_RE = /pal_pwr_[A-Za-z0-9_-]{43}/g;

const code = (res: LightMyRequestResponse) => res.json<Problem>().code;

describe.each(ENGINES)('email verification on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  const uniqueEmail = (tag: string) => `${tag}-${newId().slice(0, 8)}@example.test`;
  const post = (url: string, payload: object, headers: Record<string, string> = {}) =>
    h.built.app.inject({ method: 'POST', url, headers: { origin: ORIGIN, ...headers }, payload });
  const login = (email: string, password: string) => post('/api/auth/login', { email, password });
  const verifiedAt = async (email: string) => {
    if (!(await h.hasUser(email))) return null;
    return (await h.t.owner.query<{ email_verified_at: Date | null }>('select email_verified_at from users where id = $1', [await h.userId(email)]))[0]?.email_verified_at ?? null;
  };
  const userId = (email: string) => h.userId(email);
  /** Registers without verifying: the answer must be the usual 202. */
  async function unverified(email: string, password: string): Promise<void> {
    const res = await register(h, { email, password, name: 'Registrant' });
    expect(res.statusCode, res.body).toBe(202);
  }
  async function resetPassword(email: string, password: string): Promise<void> {
    expect((await post('/api/auth/password-reset/request', { email })).statusCode).toBe(202);
    const token = (await mailTo(h, email)).flatMap((m) => m.body.match(RESET_RE) ?? []).at(-1) as string;
    const done = await post('/api/auth/password-reset/confirm', { token, password });
    expect(done.statusCode, done.body).toBe(204);
  }

  it('a link works once, with the account\u2019s password; a wrong password leaves it usable', async () => {
    const email = uniqueEmail('once');
    await unverified(email, OWNER_PASSWORD);
    const token = await latestVerificationToken(h, email);

    const wrong = await verifyEmail(h, token, 'not-the-password-at-all');
    expect(wrong.statusCode).toBe(401);
    expect(code(wrong)).toBe('invalid_credentials');
    expect(await verifiedAt(email)).toBeNull();

    expect((await verifyEmail(h, token, OWNER_PASSWORD)).statusCode).toBe(204);
    expect(await verifiedAt(email)).toBeInstanceOf(Date);
    expect((await login(email, OWNER_PASSWORD)).statusCode).toBe(200);

    // Only the hash is at rest, and the row is spent.
    const rows = await h.t.owner.query<{ token_hash: string; used_at: Date | null }>(
      'select token_hash, used_at from email_verifications where user_id = $1', [await userId(email)]);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.token_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(rows)).not.toContain(token.slice('pal_emv_'.length));
    expect(rows[0]?.used_at).toBeInstanceOf(Date);
  });

  // review R4 finding 6
  it('refuses a replayed link', async () => {
    const email = uniqueEmail('replay');
    await unverified(email, OWNER_PASSWORD);
    const token = await latestVerificationToken(h, email);
    expect((await verifyEmail(h, token, OWNER_PASSWORD)).statusCode).toBe(204);
    const again = await verifyEmail(h, token, OWNER_PASSWORD);
    expect(again.statusCode).toBe(400);
    expect(code(again)).toBe('token_invalid');
  });

  // review R4 finding 6
  it('refuses a link after 24 hours (it works a minute before)', async () => {
    const [early, late] = [uniqueEmail('early'), uniqueEmail('late')];
    await unverified(early, OWNER_PASSWORD);
    await unverified(late, OWNER_PASSWORD);
    const [t1, t2] = [await latestVerificationToken(h, early), await latestVerificationToken(h, late)];
    h.clock.advance(DAY - 60_000);
    expect((await verifyEmail(h, t1, OWNER_PASSWORD)).statusCode).toBe(204);
    h.clock.advance(60_000);
    const expired = await verifyEmail(h, t2, OWNER_PASSWORD);
    expect(expired.statusCode).toBe(400);
    expect(code(expired)).toBe('token_invalid');
    expect(await verifiedAt(late)).toBeNull();
    expect((await login(late, OWNER_PASSWORD)).statusCode).toBe(403);
  });

  // review R4 finding 6
  it('refuses tampered links and links of another kind, and they do not burn the real one', async () => {
    const email = uniqueEmail('tamper');
    await unverified(email, OWNER_PASSWORD);
    const token = await latestVerificationToken(h, email);
    const secret = token.slice('pal_emv_'.length);
    const flipped = secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A');
    for (const forged of [
      `pal_emv_${flipped}`, `pal_pwr_${secret}`, `pal_mfa_${secret}`, secret, `${token}x`, token.slice(0, -1),
      `pal_emv_${secret.toUpperCase()}`, `pal_emv_${'A'.repeat(43)}`, ` ${token}`,
    ]) {
      const res = await verifyEmail(h, forged, OWNER_PASSWORD);
      expect(res.statusCode, forged).toBe(400);
      expect(code(res), forged).toBe('token_invalid');
    }
    expect(await verifiedAt(email)).toBeNull();
    expect((await verifyEmail(h, token, OWNER_PASSWORD)).statusCode).toBe(204);
  });

  // review R4 finding 6
  // In full: a link verifies only the account it was mailed for: another user’s link with your
  // password is refused
  it('a link verifies only the account it was mailed for', async () => {
    const [alice, bob] = [uniqueEmail('alice'), uniqueEmail('bob')];
    await unverified(alice, 'alice-passphrase-long-1');
    await unverified(bob, 'bob-passphrase-long-22');
    const alicesLink = await latestVerificationToken(h, alice);
    // Bob holds Alice's link (a forwarded mail) and types his own password.
    const res = await verifyEmail(h, alicesLink, 'bob-passphrase-long-22');
    expect(res.statusCode).toBe(401);
    expect(code(res)).toBe('invalid_credentials');
    expect([await verifiedAt(alice), await verifiedAt(bob)]).toEqual([null, null]);
    // Neither can sign in; Alice's link still works for Alice only.
    expect((await login(bob, 'bob-passphrase-long-22')).statusCode).toBe(403);
    expect((await verifyEmail(h, alicesLink, 'alice-passphrase-long-1')).statusCode).toBe(204);
    expect(await verifiedAt(bob)).toBeNull();
  });

  // review R4 finding 6
  // In full: whoever holds an invitation link and registers the invited address cannot sign in or
  // accept until the mailbox is proven
  it('an invitation holder who registers the invited address waits for the mailbox proof', async () => {
    const admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    const acme = h.orgId('acme');
    const victim = uniqueEmail('invited');
    const created = await admin.call('POST', `/api/orgs/${acme}/invitations`, { email: victim, role: 'viewer' });
    expect(created.statusCode).toBe(201);
    // The token leaks: the inviter is shown it, a mail is forwarded, a link is pasted in a chat.
    const { token: invitation, invitation: { id: invitationId } } = created.json<{ token: string; invitation: { id: string } }>();

    await unverified(victim, ATTACKER_PASSWORD);
    const signIn = await login(victim, ATTACKER_PASSWORD);
    expect(signIn.statusCode).toBe(403);
    expect(signIn.json<Problem>()).toMatchObject({ code: 'email_unverified', status: 403 });
    expect(signIn.headers['set-cookie']).toBeUndefined();

    // Even a session (none is issued to an unverified account, but accept does not rely on
    // that) cannot accept: the binding to the email needs the proven mailbox.
    const holder = client(h, await h.cookieFor(victim));
    const refused = await holder.call('POST', '/api/invitations/accept', { token: invitation });
    expect(refused.statusCode).toBe(403);
    expect(refused.json<Problem>()).toMatchObject({ code: 'email_unverified' });
    expect(await h.t.owner.query('select 1 from memberships where org_id = $1 and user_id = $2', [acme, await userId(victim)])).toEqual([]);
    const pending = (await admin.call('GET', `/api/orgs/${acme}/invitations`)).json<{ invitations: { id: string; status: string }[] }>();
    expect(pending.invitations.find((i) => i.id === invitationId)?.status).toBe('pending');

    // The mailbox's owner proves it with a reset (they do not know the registrant's password);
    // the registrant's password and session are gone, the owner accepts.
    await resetPassword(victim, OWNER_PASSWORD);
    expect((await login(victim, ATTACKER_PASSWORD)).statusCode).toBe(401);
    expect((await holder.call('GET', '/api/me')).statusCode).toBe(401);
    const signedIn = await login(victim, OWNER_PASSWORD);
    expect(signedIn.statusCode).toBe(200);
    const owner = client(h, `${h.built.cookie.name}=${signedIn.cookies.find((c) => c.name === h.built.cookie.name)?.value ?? ''}`);
    const accepted = await owner.call('POST', '/api/invitations/accept', { token: invitation });
    expect(accepted.statusCode, accepted.body).toBe(200);
  });

  // review R4 finding 6
  // In full: pre-hijacking: someone who registered another person’s address keeps nothing once the
  // owner registers again and resets
  it('pre-hijacking: a squatter on another person\u2019s address keeps nothing', async () => {
    const victim = uniqueEmail('prehijack');
    await unverified(victim, ATTACKER_PASSWORD);
    // The attacker never sees the link and cannot make one up.
    expect(code(await verifyEmail(h, `pal_emv_${'x'.repeat(43)}`, ATTACKER_PASSWORD))).toBe('token_invalid');
    expect((await login(victim, ATTACKER_PASSWORD)).statusCode).toBe(403);

    // The owner registers: the same answer as for a new address, no hint that someone was first.
    const fresh = await register(h, { email: uniqueEmail('someone-new'), password: OWNER_PASSWORD, name: 'Owner' });
    const again = await register(h, { email: victim, password: OWNER_PASSWORD, name: 'Owner' });
    expect([again.statusCode, again.body]).toEqual([fresh.statusCode, fresh.body]);
    const mails = await mailTo(h, victim);
    expect(mails).toHaveLength(2);
    expect(mails[1]?.subject).toBe('Verify your email address for Palisade');
    expect(mails[1]?.body).toContain('has an account that is not verified yet');
    expect(mails[1]?.body).toContain('https://palisade.test/reset-password');

    // The owner clicks the new link: their password is not the account's, so it is refused
    // (a link alone would have handed them an account whose password the attacker knows).
    const link = await latestVerificationToken(h, victim);
    const clicked = await verifyEmail(h, link, OWNER_PASSWORD);
    expect(clicked.statusCode).toBe(401);
    expect(await verifiedAt(victim)).toBeNull();

    // They follow the hint: the reset verifies the address and replaces the attacker's password.
    await resetPassword(victim, OWNER_PASSWORD);
    expect(await verifiedAt(victim)).toBeInstanceOf(Date);
    expect((await login(victim, ATTACKER_PASSWORD)).statusCode).toBe(401);
    expect((await login(victim, OWNER_PASSWORD)).statusCode).toBe(200);
    // Nothing the registrant could have set up survives: the account never held a session.
    const id = await userId(victim);
    for (const table of ['passkeys', 'totp_credentials', 'recovery_codes', 'memberships']) {
      expect(await h.t.owner.query(`select 1 from ${table} where user_id = $1`, [id]), table).toEqual([]);
    }
    // The reset spent every pending link.
    expect((await verifyEmail(h, link, OWNER_PASSWORD)).statusCode).toBe(400);
    const events = await auditSelect<{ details: { via: string } }>(h, ['details'], `where org_id = $1 and action = 'auth.email_verified' and target_id = $2`, [SYSTEM_ORG_ID, id]);
    expect(events.map((e) => e.details.via)).toEqual(['password_reset']);
  });

  it('registering again for an unverified address keeps the first password: both links need it', async () => {
    const email = uniqueEmail('twice');
    await unverified(email, OWNER_PASSWORD);
    await unverified(email, 'a-different-passphrase-33');
    const links = await verificationTokens(h, email);
    expect(links).toHaveLength(2);
    expect((await verifyEmail(h, links[1] as string, 'a-different-passphrase-33')).statusCode).toBe(401);
    expect((await verifyEmail(h, links[0] as string, OWNER_PASSWORD)).statusCode).toBe(204);
    // Verifying spent the other link too.
    expect(code(await verifyEmail(h, links[1] as string, OWNER_PASSWORD))).toBe('token_invalid');
  });

  // In full: a resend answers the same for unknown, verified and unverified addresses, and mails
  // only the unverified one
  it('a resend answers the same for every address and mails only an unverified one', async () => {
    const pending = uniqueEmail('resend');
    await unverified(pending, OWNER_PASSWORD);
    const verified = h.user('acme', 'member').email;
    const unknown = uniqueEmail('nobody');
    const before = (await mailTo(h, verified)).length;
    const answers = [];
    for (const email of [pending, verified, unknown]) {
      const res = await resendVerification(h, email);
      expect(res.statusCode).toBe(202);
      answers.push(res.body);
    }
    expect(new Set(answers).size).toBe(1);
    expect(JSON.parse(answers[0] as string)).toEqual({ status: 'If the address has an unverified account, a new link is on its way.' });
    expect(await verificationTokens(h, pending)).toHaveLength(2);
    expect((await mailTo(h, verified)).length).toBe(before);
    expect(await mailTo(h, unknown)).toEqual([]);
    expect((await verifyEmail(h, await latestVerificationToken(h, pending), OWNER_PASSWORD)).statusCode).toBe(204);
    const events = await auditSelect<{ details: { known: boolean; sent: boolean } }>(h, ['details'], `where org_id = $1 and action = 'auth.email_verification_requested' order by seq desc limit 3`, [SYSTEM_ORG_ID]);
    expect(events.map((e) => [e.details.known, e.details.sent]).reverse()).toEqual([[true, true], [true, false], [false, false]]);
  });

  it('wrong passwords at verification count toward the lockout, like any password attempt', async () => {
    const email = uniqueEmail('guess');
    await unverified(email, OWNER_PASSWORD);
    const link = await latestVerificationToken(h, email);
    for (let i = 0; i < 5; i++) expect((await verifyEmail(h, link, `guess-number-${i}-long-enough`)).statusCode).toBe(401);
    // Locked: the right password is refused too, and the link is not spent.
    expect((await verifyEmail(h, link, OWNER_PASSWORD)).statusCode).toBe(401);
    expect(await verifiedAt(email)).toBeNull();
    const failures = await h.t.owner.query<{ n: number }>(
      `select count(*)::int as n from audit_events where org_id = $1 and action = 'auth.email_verification_failed' and target_id = $2`, [SYSTEM_ORG_ID, await userId(email)]);
    expect(failures[0]?.n).toBe(6);
  });

  it('of two concurrent confirmations of one link, one verifies and the other is refused', async () => {
    const email = uniqueEmail('race');
    await unverified(email, OWNER_PASSWORD);
    const link = await latestVerificationToken(h, email);
    const both = await Promise.all([verifyEmail(h, link, OWNER_PASSWORD), verifyEmail(h, link, OWNER_PASSWORD)]);
    expect(both.map((r) => r.statusCode).sort()).toEqual([204, 400]);
    const verified = await h.t.owner.query<{ n: number }>(
      `select count(*)::int as n from audit_events where org_id = $1 and action = 'auth.email_verified' and target_id = $2`, [SYSTEM_ORG_ID, await userId(email)]);
    expect(verified[0]?.n).toBe(1);
  });

  it('seeded demo users are verified; the sign-up helper verifies through the mailed link', async () => {
    expect(h.demo.logins.length).toBeGreaterThan(0);
    const demoIds = await Promise.all(h.demo.logins.map((l) => h.userId(l.email)));
    const demo = await h.t.owner.query<{ n: number }>('select count(*)::int as n from users where id = any ($1::uuid[]) and email_verified_at is null', [demoIds]);
    expect(demo[0]?.n).toBe(0);
    const u = await signUp(h, { email: uniqueEmail('helper') });
    expect((await client(h, u.cookie).call('GET', '/api/me')).statusCode).toBe(200);
  });

  it('keeps verification tokens out of logs and the audit trail', async () => {
    const email = uniqueEmail('secret');
    await unverified(email, OWNER_PASSWORD);
    const link = await latestVerificationToken(h, email);
    await verifyEmail(h, link, OWNER_PASSWORD);
    const secret = link.slice('pal_emv_'.length);
    expect(h.logs.join('\n')).not.toContain(secret);
    const audit = await auditSelect<{ details: unknown }>(h, ['details'], ``, []);
    expect(JSON.stringify(audit)).not.toContain(secret);
    expect(JSON.stringify(audit)).not.toContain(OWNER_PASSWORD);
  });
});

describe('email verification rate limit', () => {
  let h: TestApp;
  beforeAll(async () => {
    const limits = RELAXED_LIMITS.replace('email-verify=100000/60', 'email-verify=3/3600');
    h = await createTestApp('pglite', { config: { RATE_LIMITS: limits } });
  });
  afterAll(async () => h?.close());

  it('counts confirmations and resends under one policy per address (and resends per email too)', async () => {
    const ip = { remoteAddress: '198.51.100.7' };
    const send = (url: string, payload: object) => h.built.app.inject({ method: 'POST', url, headers: { origin: ORIGIN }, payload, ...ip });
    for (let i = 0; i < 2; i++) expect((await send('/api/auth/verify-email/resend', { email: `r${i}@example.test` })).statusCode).toBe(202);
    expect((await send('/api/auth/verify-email', { token: `pal_emv_${'A'.repeat(43)}`, password: 'whatever-long-pass' })).statusCode).toBe(400);
    const limited = await send('/api/auth/verify-email', { token: `pal_emv_${'A'.repeat(43)}`, password: 'whatever-long-pass' });
    expect(limited.statusCode).toBe(429);
    expect(limited.json<Problem>().code).toBe('rate_limited');
    expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0);
    // Per email as well, as a cap on the mail, not on the answer (review R5 finding B): a 429
    // here let anyone spend another person's budget and told them the count was reached.
    const victim = { email: 'victim-limit@example.test' };
    for (let i = 0; i < 3; i++) {
      const res = await h.built.app.inject({ method: 'POST', url: '/api/auth/verify-email/resend', headers: { origin: ORIGIN }, payload: victim, remoteAddress: `198.51.100.${20 + i}` });
      expect(res.statusCode).toBe(202);
    }
    const fourth = await h.built.app.inject({ method: 'POST', url: '/api/auth/verify-email/resend', headers: { origin: ORIGIN }, payload: victim, remoteAddress: '198.51.100.30' });
    expect(fourth.statusCode).toBe(202);
    expect(fourth.headers['ratelimit-remaining']).toBe('2');
  });
});
