import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Problem, type TestApp } from '../../../test/support/app.js';
import { call, sessionFrom } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { enrollTotp, nextCode, verifyMfa } from '../../../test/support/mfa.js';
import { passwordUser } from '../../../test/support/users.js';
import { auditSelect, auditRows } from '../../../test/support/evidence.js';

const LINK_RE = /https:\/\/palisade\.test\/sign-in\/link#token=(pal_mgl_[A-Za-z0-9_-]{43})/;
const BINDING = '__Host-palisade_link';

/** Sign-in by mailed link: single use, 15 minutes, the asking browser only, a first factor only. */
describe.each(ENGINES)('magic-link sign-in on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  const ask = (email: string, cookie?: string) => call(h, 'POST', '/api/auth/magic-link', { payload: { email }, ...(cookie ? { cookie } : {}) });
  const redeem = (token: string, binding?: string) =>
    call(h, 'POST', '/api/auth/magic-link/verify', { payload: { token }, ...(binding ? { cookie: `${BINDING}=${binding}` } : {}) });
  const bindingOf = (res: LightMyRequestResponse) => res.cookies.find((c) => c.name === BINDING)?.value ?? '';
  const outbox = (email: string) => h.t.db.withSystem('test', (tx) => h.built.services.mail.read(tx, email));
  async function linkFor(email: string): Promise<{ token: string; binding: string }> {
    const res = await ask(email);
    expect(res.statusCode, res.body).toBe(202);
    const token = (await outbox(email)).map((m) => LINK_RE.exec(m.body)?.[1]).filter(Boolean).at(-1);
    if (!token) throw new Error(`no link mailed to ${email}`);
    return { token, binding: bindingOf(res) };
  }
  const refused = (res: LightMyRequestResponse) => {
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json<Problem>().code).toBe('token_invalid');
    expect(sessionFrom(res)).toBeNull();
  };

  it('signs in the browser that asked, once; the session is not a step-up and records the method', async () => {
    const user = await passwordUser(h, h.orgId('acme'));
    const { token, binding } = await linkFor(user.email);
    const res = await redeem(token, binding);
    expect(res.statusCode, res.body).toBe(200);
    const cookie = sessionFrom(res);
    expect(cookie).toBeTruthy();
    expect((await call(h, 'GET', '/api/me', { cookie: cookie as string })).json<{ user: { id: string } }>().user.id).toBe(user.id);
    const [s] = await h.t.owner.query<{ auth_method: string; stepped_up_at: Date | null; mfa_verified: boolean }>(
      'select auth_method, stepped_up_at, mfa_verified from sessions where user_id = $1', [user.id]);
    expect(s).toEqual({ auth_method: 'magic_link', stepped_up_at: null, mfa_verified: false });
    refused(await redeem(token, binding));
    // The database keeps a hash of the token only; the audit trail and logs never see it.
    const secret = token.slice('pal_mgl_'.length);
    expect(JSON.stringify(await h.t.owner.query('select * from magic_links'))).not.toContain(secret);
    expect(JSON.stringify(await auditSelect(h, ['details'], ``))).not.toContain(secret);
    expect(h.logs.join('')).not.toContain(secret);
  });

  it('answers the same for a known, an unknown and an unverified address, and mails only the verified one', async () => {
    const known = await passwordUser(h);
    await h.insertUser({ email: 'unproven@magic.test', name: 'x', verified: false });
    const answers = await Promise.all([ask(known.email), ask('nobody@magic.test'), ask('unproven@magic.test')]);
    for (const a of answers) expect([a.statusCode, a.json()]).toEqual([202, answers[0]?.json()]);
    expect(await outbox(known.email)).toHaveLength(1);
    expect(await outbox('nobody@magic.test')).toHaveLength(0);
    expect(await outbox('unproven@magic.test')).toHaveLength(0);
  });

  it('refuses the link in another browser without spending it, after 15 minutes, and after a sign-out everywhere', async () => {
    const user = await passwordUser(h);
    const { token, binding } = await linkFor(user.email);
    refused(await redeem(token));
    refused(await redeem(token, bindingOf(await ask('someone-else@magic.test'))));
    refused(await redeem(`${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`, binding));
    expect((await redeem(token, binding)).statusCode).toBe(200);

    const late = await linkFor(user.email);
    h.clock.advance(15 * 60_000 + 1);
    refused(await redeem(late.token, late.binding));

    const voided = await linkFor(user.email);
    await h.t.owner.query('update users set session_epoch = session_epoch + 1 where id = $1', [user.id]);
    refused(await redeem(voided.token, voided.binding));
    const failures = (await auditRows(h, "where action = 'auth.login_failed' and target_id = $1 order by seq", [user.id])).map((e) => ({ reason: e.details.reason }));
    expect(failures.map((f) => f.reason)).toEqual(['other_browser', 'other_browser', 'expired_or_revoked', 'expired_or_revoked']);
  });

  it('is a first factor only: an account with TOTP gives its code before any session', async () => {
    const user = await passwordUser(h);
    const totp = await enrollTotp(h, user);
    const { token, binding } = await linkFor(user.email);
    const res = await redeem(token, binding);
    expect(res.statusCode, res.body).toBe(200);
    expect(sessionFrom(res)).toBeNull();
    const pending = res.json<{ mfaRequired: boolean; mfaToken: string; methods: string[] }>();
    expect(pending).toMatchObject({ mfaRequired: true, methods: expect.arrayContaining(['totp']) });
    const done = await verifyMfa(h, pending.mfaToken, { code: nextCode(h, totp.secret) });
    expect(done.statusCode, done.body).toBe(200);
    expect(sessionFrom(done)).toBeTruthy();
  });

  it('refuses malformed input with 400, never 5xx', async () => {
    for (const payload of [{}, { email: 'not-an-address' }, { email: 'a'.repeat(300) + '@x.test' }, { email: 'x@y.test', extra: 1 }]) {
      const res = await call(h, 'POST', '/api/auth/magic-link', { payload });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
    }
    for (const token of ['', 'x'.repeat(201), 'pal_mgl_short', 'pal_pwr_' + 'a'.repeat(43)]) {
      const res = await call(h, 'POST', '/api/auth/magic-link/verify', { payload: { token } });
      expect(res.statusCode, token).toBe(400);
    }
  });
});
