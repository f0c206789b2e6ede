import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../../../test/support/app.js';
import { SoftAuthenticator } from '../../../test/support/authenticator.js';
import { client, type Client } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { call, code, sessionFrom } from '../../../test/support/client.js';
import { addPasskey as addPasskeyFor, login } from '../../../test/support/mfa.js';
import { passwordUser } from '../../../test/support/users.js';
import { newId } from '../../crypto/index.js';
import { MAX_PASSKEYS } from './passkeys.js';
import { systemContext } from '../../kernel/context.js';
import { totpCodeAt } from './totp.js';
import { auditRows } from '../../../test/support/evidence.js';

type Json = Record<string, unknown>;
const json = (r: LightMyRequestResponse) => r.json<Json>();

/** Passkeys through the HTTP API with a software authenticator and the real verifier. */
describe.each(ENGINES)('passkeys on %s', (engine) => {
  let h: TestApp;
  const rpId = new URL(ORIGIN).hostname;

  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  async function signedIn(role: 'owner' | 'admin' | 'member' | 'viewer' = 'member', org = 'acme'): Promise<{ c: Client; email: string; password: string }> {
    const u = h.user(org, role);
    return { c: client(h, await h.cookieFor(u.email)), email: u.email, password: u.password };
  }

  async function addPasskey(c: Client, auth: SoftAuthenticator, name = 'Laptop', origin?: string): Promise<LightMyRequestResponse> {
    const opts = json(await c.call('POST', '/api/me/passkeys/registration-options'));
    const options = opts.options as { challenge: string; rp: { id: string }; user: { id: string } };
    expect(options.rp.id).toBe(rpId);
    return c.call('POST', '/api/me/passkeys', { ceremonyToken: opts.ceremonyToken, name, response: auth.create(options, origin ? { origin } : {}) });
  }

  async function signInOptions(mfaToken?: string): Promise<{ ceremonyToken: string; options: { challenge: string; allowCredentials?: { id: string }[] } }> {
    const r = await h.built.app.inject({ method: 'POST', url: '/api/auth/passkey/options', headers: { origin: ORIGIN }, payload: mfaToken ? { mfaToken } : {} });
    expect(r.statusCode, r.body).toBe(200);
    return r.json();
  }

  const post = (url: string, payload: object, cookie?: string) =>
    h.built.app.inject({ method: 'POST', url, headers: { origin: ORIGIN, ...(cookie ? { cookie } : {}) }, payload });

  it('registers several passkeys, lists, renames and removes them; MFA follows', async () => {
    const { c } = await signedIn('viewer');
    const auth = new SoftAuthenticator(rpId, ORIGIN);
    const a = await addPasskey(c, auth, 'Laptop');
    expect(a.statusCode, a.body).toBe(201);
    const b = await addPasskey(c, auth, 'Phone');
    expect(b.statusCode, b.body).toBe(201);
    const list = json(await c.call('GET', '/api/me/passkeys')).passkeys as { id: string; name: string }[];
    expect(list.map((p) => p.name)).toEqual(['Laptop', 'Phone']);
    expect(json(await c.call('GET', '/api/me/mfa')).enabled).toBe(true);
    const renamed = await c.call('PATCH', `/api/me/passkeys/${list[0]?.id}`, { name: 'Work laptop' });
    expect(json(renamed).name).toBe('Work laptop');
    for (const p of list) expect((await c.call('DELETE', `/api/me/passkeys/${p.id}`)).statusCode).toBe(204);
    expect(json(await c.call('GET', '/api/me/mfa')).enabled).toBe(false);
  });

  // review 2026-12-05 F1: transports reached PGlite unchecked, and a number there wedged its one connection.
  it('stores only known transports, whatever shape the client sends, and keeps serving', async () => {
    const claims: unknown[] = [5, { usb: true }, 'usb', [['x']], ['usb', 'nfc', 'usb', 'warp', 7, 'x'.repeat(2000)], new Array(50).fill('ble')];
    for (const transports of claims) {
      const u = await passwordUser(h);
      const c = client(h, await h.cookieFor(u.email));
      const opts = json(await c.call('POST', '/api/me/passkeys/registration-options'));
      const response = new SoftAuthenticator(rpId, ORIGIN).create(opts.options as never) as { response: Record<string, unknown> };
      response.response.transports = transports;
      const res = await c.call('POST', '/api/me/passkeys', { ceremonyToken: opts.ceremonyToken, name: 'Key', response });
      expect(res.statusCode, `${JSON.stringify(transports).slice(0, 40)}: ${res.body}`).toBe(201);
      const stored = (json(await c.call('GET', '/api/me/passkeys')).passkeys as { transports: string[] }[])[0]?.transports;
      expect(stored).toEqual(Array.isArray(transports) ? [...new Set(transports.filter((t) => ['usb', 'nfc', 'ble'].includes(t as string)))] : []);
      expect((await c.call('GET', '/api/me')).statusCode).toBe(200);
    }
  });

  it('refuses a registration from another origin, a reused ceremony and another user\u2019s ceremony', async () => {
    const { c } = await signedIn('admin');
    const auth = new SoftAuthenticator(rpId, ORIGIN);
    expect((await addPasskey(c, auth, 'Phished', 'https://evil.example')).statusCode).toBe(401);
    const opts = json(await c.call('POST', '/api/me/passkeys/registration-options'));
    const response = auth.create(opts.options as never);
    expect((await c.call('POST', '/api/me/passkeys', { ceremonyToken: opts.ceremonyToken, name: 'A', response })).statusCode).toBe(201);
    expect(json(await c.call('POST', '/api/me/passkeys', { ceremonyToken: opts.ceremonyToken, name: 'B', response })).code).toBe('token_invalid');
    const other = await signedIn('owner');
    const theirs = json(await other.c.call('POST', '/api/me/passkeys/registration-options'));
    const stolen = await c.call('POST', '/api/me/passkeys', { ceremonyToken: theirs.ceremonyToken, name: 'C', response: auth.create(theirs.options as never) });
    expect(json(stolen).code).toBe('token_invalid');
  });

  it('signs in with a passkey alone (new session id, MFA-verified), once per challenge', async () => {
    const { c, email } = await signedIn('member', 'globex');
    const auth = new SoftAuthenticator(rpId, ORIGIN);
    expect((await addPasskey(c, auth)).statusCode).toBe(201);
    const { ceremonyToken, options } = await signInOptions();
    expect(options.allowCredentials ?? []).toEqual([]); // discoverable: the passkey names the user
    const assertion = auth.get(options);
    const res = await post('/api/auth/passkey/login', { ceremonyToken, response: assertion }, c.cookie);
    expect(res.statusCode, res.body).toBe(200);
    expect((json(res).user as Json).email).toBe(email);
    const fresh = res.cookies.find((k) => k.name === h.built.cookie.name)?.value;
    expect(fresh).toBeTruthy();
    expect(`${h.built.cookie.name}=${fresh}`).not.toBe(c.cookie);
    // The cookie the browser brought was revoked (no fixation), the new one works.
    expect((await h.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie: c.cookie } })).statusCode).toBe(401);
    expect((await h.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie: `${h.built.cookie.name}=${fresh}` } })).statusCode).toBe(200);
    // Replaying the same response, or the token, gets nothing.
    expect(json(await post('/api/auth/passkey/login', { ceremonyToken, response: assertion })).code).toBe('token_invalid');
  });

  // In full: refuses assertions from another origin, without user verification, with a bad
  // signature, a replayed counter or an expired challenge
  it('refuses assertions that are foreign, unverified, badly signed, replayed or expired', async () => {
    const { c } = await signedIn('owner', 'globex');
    const auth = new SoftAuthenticator(rpId, ORIGIN);
    expect((await addPasskey(c, auth)).statusCode).toBe(201);
    const attempt = async (make: (o: { challenge: string }) => object, before?: () => void) => {
      const { ceremonyToken, options } = await signInOptions();
      before?.();
      return post('/api/auth/passkey/login', { ceremonyToken, response: make(options) });
    };
    expect((await attempt((o) => auth.get(o, { origin: 'https://palisade.test.evil.example' }))).statusCode).toBe(401);
    expect((await attempt((o) => auth.get(o, { userVerified: false }))).statusCode).toBe(401);
    const tampered = await attempt((o) => {
      const a = auth.get(o);
      const sig = Buffer.from(a.response.signature, 'base64url');
      sig[sig.length - 1] = (sig[sig.length - 1] ?? 0) ^ 1;
      return { ...a, response: { ...a.response, signature: sig.toString('base64url') } };
    });
    expect(tampered.statusCode).toBe(401);
    expect((await attempt((o) => auth.get(o))).statusCode).toBe(200);
    // A cloned authenticator reuses an old counter value: refused.
    const used = auth.credentials[0]?.counter ?? 0;
    expect((await attempt((o) => auth.get(o, { counter: used }))).statusCode).toBe(401);
    const expired = await attempt((o) => auth.get(o), () => h.clock.advance(3 * 60_000));
    expect(json(expired).code).toBe('token_invalid');
    const failures = (await auditRows(h, `where action = 'auth.passkey_failed' order by seq`)).map((e) => ({ reason: e.details.reason }));
    expect(failures.length).toBeGreaterThanOrEqual(4);
  });

  it('serves as the second factor after a password, and for step-up; never for another user', async () => {
    const { c, email, password } = await signedIn('viewer', 'globex');
    const auth = new SoftAuthenticator(rpId, ORIGIN);
    expect((await addPasskey(c, auth)).statusCode).toBe(201);
    const login = await post('/api/auth/login', { email, password });
    expect(login.statusCode, login.body).toBe(200);
    expect(login.cookies.find((k) => k.name === h.built.cookie.name)).toBeUndefined();
    const { mfaToken } = json(login) as { mfaToken: string };
    const { ceremonyToken, options } = await signInOptions(mfaToken);
    expect(options.allowCredentials?.length).toBe(1);
    // Another user's passkey does not complete this user's sign-in.
    const intruder = new SoftAuthenticator(rpId, ORIGIN);
    const other = await signedIn('admin', 'globex');
    expect((await addPasskey(other.c, intruder)).statusCode).toBe(201);
    const wrong = await post('/api/auth/mfa/passkey', { mfaToken, ceremonyToken, response: intruder.get(options, { credential: intruder.credentials[0] }) });
    expect(wrong.statusCode).toBe(401);
    const again = await signInOptions(mfaToken);
    const done = await post('/api/auth/mfa/passkey', { mfaToken, ceremonyToken: again.ceremonyToken, response: auth.get(again.options) });
    expect(done.statusCode, done.body).toBe(200);
    const cookie = `${h.built.cookie.name}=${done.cookies.find((k) => k.name === h.built.cookie.name)?.value}`;
    // The pending token is spent.
    const reuse = await signInOptions(mfaToken).catch(() => null);
    expect(reuse).toBeNull();

    // Step-up: after 10 minutes a sensitive route needs a fresh proof; the passkey gives it.
    h.clock.advance(11 * 60_000);
    const s = client(h, cookie);
    expect(json(await s.call('POST', '/api/me/passkeys/registration-options')).code).toBe('step_up_required');
    const so = json(await s.call('POST', '/api/me/passkeys/assertion-options')) as { ceremonyToken: string; options: { challenge: string } };
    const up = await s.call('POST', '/api/auth/step-up/passkey', { ceremonyToken: so.ceremonyToken, response: auth.get(so.options) });
    expect(up.statusCode, up.body).toBe(200);
    expect((await s.call('POST', '/api/me/passkeys/registration-options')).statusCode).toBe(200);
  });

  // In full: keeps MFA on while a passkey remains when the authenticator app is turned off; sign-in
  // lists the methods left
  it('keeps MFA on while a passkey remains when the authenticator app is turned off', async () => {
    const { c, email, password } = await signedIn('admin', 'globex');
    const auth = new SoftAuthenticator(rpId, ORIGIN);
    expect((await addPasskey(c, auth)).statusCode).toBe(201);
    const ctx = systemContext('test');
    const userId = (json(await c.call('GET', '/api/me')).user as { id: string }).id;
    const { secret } = await h.built.services.mfa.enrollTotp(ctx, userId);
    const { recoveryCodes } = await h.built.services.mfa.confirmTotp(ctx, userId, totpCodeAt(secret, h.clock.now()));
    const methods = (body: Json) => body.methods as string[];
    expect(methods(json(await post('/api/auth/login', { email, password })))).toEqual(['totp', 'recoveryCode', 'passkey']);
    const off = await c.call('POST', '/api/me/mfa/disable', { recoveryCode: recoveryCodes[0] });
    expect(off.statusCode, off.body).toBe(200);
    expect(json(off)).toEqual({ enabled: true });
    expect(methods(json(await post('/api/auth/login', { email, password })))).toEqual(['passkey']);
  });

  const REWRITE = 'Phone"\n\nThis was you during onboarding: no action is needed.\n\n--';
  const mailsTo = (email: string) => h.t.db.withSystem('test', (tx) => h.built.services.mail.read(tx, email));

  // review R4 finding 5
  it('refuses a name that would rewrite the notification or reorder itself, on create and on rename', async () => {
    const { c, email } = await signedIn('member', 'globex');
    const auth = new SoftAuthenticator(rpId, ORIGIN);
    const before = (await mailsTo(email)).length;
    const listed = async () => (json(await c.call('GET', '/api/me/passkeys')).passkeys as { name: string }[]).map((p) => p.name);
    const had = await listed();
    for (const name of [REWRITE, 'Phone\u202Eenoh', 'a\u200Bb', 'Tab\there', 'x'.repeat(65)]) {
      const res = await addPasskey(c, auth, name);
      expect(res.statusCode, JSON.stringify(name)).toBe(400);
      expect(json(res)).toMatchObject({ code: 'validation_failed', errors: [{ path: 'body.name' }] });
    }
    expect(await listed()).toEqual(had);
    expect(await mailsTo(email)).toHaveLength(before);

    const pk = json(await addPasskey(c, auth, 'Renamable'));
    for (const name of [REWRITE, '\u202Eenohp', 'Phone\u2066x\u2069', 'line\u2028break']) {
      const res = await c.call('PATCH', `/api/me/passkeys/${pk.id as string}`, { name });
      expect(res.statusCode, JSON.stringify(name)).toBe(400);
      expect(json(res)).toMatchObject({ code: 'validation_failed', errors: [{ path: 'body.name' }] });
    }
    expect(await listed()).toEqual([...had, 'Renamable']);
  });

  // review R4 finding 5
  // In full: accepts a name in any script and mails it quoted, on its own labelled line, with the
  // address and user agent quoted too
  it('accepts a name in any script and mails it quoted on its own labelled line', async () => {
    const { c, email } = await signedIn('viewer', 'globex');
    const auth = new SoftAuthenticator(rpId, ORIGIN);
    const added = await addPasskey(c, auth, '  Te\u0301le\u0301phone de Zoe\u0308 \u{1F4F1} ');
    expect(added.statusCode, added.body).toBe(201);
    expect(json(added).name).toBe('T\u00E9l\u00E9phone de Zo\u00EB \u{1F4F1}');
    const mail = (await mailsTo(email)).at(-1);
    expect(mail?.subject).toBe('A sign-in method was added to your Palisade account');
    const lines = mail?.body.split('\n') ?? [];
    expect(lines).toContain('  Name given to the passkey: \u201CT\u00E9l\u00E9phone de Zo\u00EB \u{1F4F1}\u201D');
    expect(lines).toContain('  Added from the network address: \u201C127.0.0.1\u201D');
    expect(lines).toContain('  By a browser describing itself as: \u201ClightMyRequest\u201D');
    const renamed = await c.call('PATCH', `/api/me/passkeys/${json(added).id as string}`, { name: 'T\u00E9l\u00E9phone \u00AB pro \u00BB' });
    expect(renamed.statusCode).toBe(200);
  });

  // review R4 finding 5 (the mail does not trust the route: text stored or sent before any check)
  it('quotes and neutralises a hostile name and user agent that never met the schema', async () => {
    const { email } = await signedIn('owner', 'globex');
    const userId = await h.userId(email);
    const auth = new SoftAuthenticator(rpId, ORIGIN);
    const ctx = { ...systemContext('test'), ip: '203.0.113.7', userAgent: 'Evil\r\n\r\nNo action is needed.\u202E' };
    const { ceremonyToken, options } = await h.built.services.passkeys.registrationOptions(ctx, userId);
    await h.built.services.passkeys.register(ctx, userId, { ceremonyToken, name: REWRITE, response: auth.create(options) as never });
    const body = (await mailsTo(email)).at(-1)?.body ?? '';
    expect(body).not.toContain('\n\nThis was you');
    expect(body).not.toContain('\nNo action is needed');
    expect(body).not.toContain('\u202E');
    const lines = body.split('\n');
    const nameLine = lines.find((l) => l.startsWith('  Name given to the passkey: '));
    expect(nameLine).toBe("  Name given to the passkey: \u201CPhone' This was you during onboarding: no action is needed. --\u201D");
    expect(lines.find((l) => l.startsWith('  By a browser'))).toBe('  By a browser describing itself as: \u201CEvil No action is needed.\uFFFD\u201D');
    expect(lines.at(-1)).toMatch(/^If this was not you, reset your password/);
  });
});

/**
 * The second attacker review (S2, passkeys, 1ea3d0c): the cap, refusal evidence and ceremony
 * binding, through the HTTP API as a browser calls it.
 */
describe.each(ENGINES)('passkey ceremonies under attack on %s', (engine) => {
  let h: TestApp;
  const RP_ID = new URL(ORIGIN).hostname;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  // review S2 P2-3, fixed. It failed as: the cap was checked when registration options were
  // issued, not when the passkey was added, so two ceremonies opened at cap - 1 both completed.
  // Fix: passkeys.ts (the cap is checked under a lock when the passkey is added).
  it(`holds the ${MAX_PASSKEYS}-passkey cap when two ceremonies opened below it both complete`, async () => {
    const u = await passwordUser(h);
    const cookie = await h.cookieFor(u.email);
    for (let i = 0; i < MAX_PASSKEYS - 1; i++) {
      await h.t.owner.query(
        `insert into passkeys (id, user_id, credential_id, public_key, counter, transports, name, created_at)
         values ($1, $2, $3, '\\x00', 0, '{}', $4, now())`,
        [newId(), u.id, `filler-${newId()}`, `filler ${i}`],
      );
    }
    // Two ceremonies opened at 19 passkeys, both completed.
    const auth = new SoftAuthenticator(RP_ID, ORIGIN);
    const o1 = json(await call(h, 'POST', '/api/me/passkeys/registration-options', { cookie })) as { ceremonyToken: string; options: never };
    const o2 = json(await call(h, 'POST', '/api/me/passkeys/registration-options', { cookie })) as { ceremonyToken: string; options: never };
    const r1 = await call(h, 'POST', '/api/me/passkeys', { cookie, payload: { ceremonyToken: o1.ceremonyToken, name: 'A', response: auth.create(o1.options) } });
    expect(r1.statusCode).toBe(201);
    const r2 = await call(h, 'POST', '/api/me/passkeys', { cookie, payload: { ceremonyToken: o2.ceremonyToken, name: 'B', response: auth.create(o2.options) } });
    const [{ n }] = (await h.t.owner.query<{ n: number }>('select count(*)::int as n from passkeys where user_id = $1', [u.id])) as [{ n: number }];
    expect(n, `passkeys stored (cap ${MAX_PASSKEYS}); second registration answered ${r2.statusCode}`).toBeLessThanOrEqual(MAX_PASSKEYS);
  });

  // review S2 P2-4, fixed. It failed as: a refused passkey registration (attestation from another
  // origin) left no audit evidence, unlike a refused assertion. Fix: passkeys.ts (refusals audited).
  it('audits a refused registration (attestation from another origin) as auth.passkey_failed', async () => {
    const u = await passwordUser(h);
    const cookie = await h.cookieFor(u.email);
    const o = json(await call(h, 'POST', '/api/me/passkeys/registration-options', { cookie })) as { ceremonyToken: string; options: never };
    const phished = new SoftAuthenticator(RP_ID, 'https://palisade.test.evil.example').create(o.options);
    const res = await call(h, 'POST', '/api/me/passkeys', { cookie, payload: { ceremonyToken: o.ceremonyToken, name: 'Phished', response: phished } });
    expect(res.statusCode).toBe(401);
    const evidence = await h.t.owner.query<{ action: string }>(
      `select action from audit_events where target_id = $1 and result <> 'success'`,
      [u.id],
    );
    expect(evidence.map((e) => e.action), 'failure events about this user').toContain('auth.passkey_failed');
  });

  // review S2 (SOUND: tried and refused). A ceremony is bound to its purpose and user: a
  // second-factor ceremony of user A cannot finish B's pending sign-in, nor serve as a step-up or
  // a discoverable sign-in.
  it('binds a ceremony to its purpose and user: no crossing users, step-up or discoverable sign-in', async () => {
    const a = await passwordUser(h);
    const b = await passwordUser(h);
    const authA = new SoftAuthenticator(RP_ID, ORIGIN);
    const authB = new SoftAuthenticator(RP_ID, ORIGIN);
    const ca = await h.cookieFor(a.email);
    const cb = await h.cookieFor(b.email);
    expect((await addPasskeyFor(h, ca, authA)).statusCode).toBe(201);
    expect((await addPasskeyFor(h, cb, authB)).statusCode).toBe(201);
    const tokA = (json(await login(h, a.email, a.password)) as { mfaToken: string }).mfaToken;
    const tokB = (json(await login(h, b.email, b.password)) as { mfaToken: string }).mfaToken;
    const options = async (mfaToken: string) =>
      json(await call(h, 'POST', '/api/auth/passkey/options', { payload: { mfaToken } })) as { ceremonyToken: string; options: { challenge: string } };

    // A's ceremony + A's assertion against B's pending sign-in.
    const oa = await options(tokA);
    const cross = await call(h, 'POST', '/api/auth/mfa/passkey', { payload: { mfaToken: tokB, ceremonyToken: oa.ceremonyToken, response: authA.get(oa.options) } });
    expect(cross.statusCode).toBe(401);
    expect(sessionFrom(cross)).toBeNull();
    // A second-factor ceremony is neither a discoverable sign-in nor a step-up.
    const ob = await options(tokB);
    expect(code(await call(h, 'POST', '/api/auth/passkey/login', { payload: { ceremonyToken: ob.ceremonyToken, response: authB.get(ob.options) } }))).toBe('token_invalid');
    const ob2 = await options(tokB);
    expect(code(await call(h, 'POST', '/api/auth/step-up/passkey', { cookie: cb, payload: { ceremonyToken: ob2.ceremonyToken, response: authB.get(ob2.options) } }))).toBe('token_invalid');
    // B's own step-up ceremony, answered by A's passkey, on B's session: refused.
    const su = json(await call(h, 'POST', '/api/me/passkeys/assertion-options', { cookie: cb })) as { ceremonyToken: string; options: { challenge: string } };
    const foreign = await call(h, 'POST', '/api/auth/step-up/passkey', { cookie: cb, payload: { ceremonyToken: su.ceremonyToken, response: authA.get(su.options, { credential: authA.credentials[0] }) } });
    expect(foreign.statusCode).toBe(401);
    // And B's pending sign-in still completes with B's passkey.
    const ob3 = await options(tokB);
    const ok = await call(h, 'POST', '/api/auth/mfa/passkey', { payload: { mfaToken: tokB, ceremonyToken: ob3.ceremonyToken, response: authB.get(ob3.options) } });
    expect(ok.statusCode, ok.body).toBe(200);
  });
});
