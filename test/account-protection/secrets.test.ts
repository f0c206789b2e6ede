/**
 * The secrets of the account-protection flows — the TOTP secret (and its otpauth URI), recovery
 * codes, pending sign-in tokens, the codes typed — pushed through every flow, right and wrong,
 * must never appear in the logs, in the audit trail, in an error answer, nor in clear anywhere
 * in the database.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';
import { call as rawCall, type CallOpts, sessionFrom } from '../support/client.js';
import { enrollTotp, nextCode, wrongCode } from '../support/mfa.js';
import { passwordUser } from '../support/users.js';

describe.each(ENGINES)('account-protection secrets on %s', (engine) => {
  let h: TestApp;
  /** Long secrets: must appear nowhere, as substrings. */
  const secrets = new Map<string, string>();
  /** Six-digit codes typed: must not appear as a number on their own. */
  const typedCodes = new Set<string>();
  const problems: string[] = [];

  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  async function call(method: 'GET' | 'POST' | 'PATCH', url: string, o: CallOpts = {}): Promise<LightMyRequestResponse> {
    const res = await rawCall(h, method, url, o);
    if (String(res.headers['content-type'] ?? '').startsWith('application/problem+json')) problems.push(res.body);
    return res;
  }
  const remember = (name: string, value: string) => secrets.set(name, value);

  it('runs every flow with right and wrong secrets', async () => {
    const u = await passwordUser(h);
    const cookie = await h.cookieFor(u.email);
    // Enrollment, a failed and a good confirmation.
    const e = (await call('POST', '/api/me/mfa/totp', { cookie })).json<{ secret: string; otpauthUri: string }>();
    remember('totp secret', e.secret);
    remember('totp secret (lower)', e.secret.toLowerCase());
    remember('otpauth uri', e.otpauthUri);
    const bad = wrongCode(h, e.secret);
    typedCodes.add(bad);
    expect((await call('POST', '/api/me/mfa/totp/confirm', { cookie, payload: { code: bad } })).statusCode).toBe(401);
    // Re-enroll (the pending secret is replaced) and confirm through the helper.
    const enrolled = await enrollTotp(h, u, cookie);
    remember('totp secret 2', enrolled.secret);
    remember('totp secret 2 (lower)', enrolled.secret.toLowerCase());
    enrolled.recoveryCodes.forEach((c, i) => {
      remember(`recovery ${i}`, c);
      remember(`recovery ${i} (bare)`, c.replace(/-/g, ''));
    });

    // Two-step sign-in: wrong code, wrong recovery code, a code in the wrong field, then right.
    const pending = (await call('POST', '/api/auth/login', { payload: { email: u.email, password: u.password } })).json<{ mfaToken: string }>();
    remember('mfa token', pending.mfaToken);
    remember('mfa token secret', pending.mfaToken.slice('pal_mfa_'.length));
    const w = wrongCode(h, enrolled.secret);
    typedCodes.add(w);
    expect((await call('POST', '/api/auth/mfa/verify', { payload: { mfaToken: pending.mfaToken, code: w } })).statusCode).toBe(401);
    expect((await call('POST', '/api/auth/mfa/verify', { payload: { mfaToken: pending.mfaToken, recoveryCode: 'canary-wrong-rc1' } })).statusCode).toBe(401);
    remember('typed wrong recovery code', 'canary-wrong-rc1');
    const misplaced = await call('POST', '/api/auth/mfa/verify', { payload: { mfaToken: pending.mfaToken, code: enrolled.recoveryCodes[0] } });
    expect(misplaced.statusCode).toBe(400);
    const both = await call('POST', '/api/auth/mfa/verify', { payload: { mfaToken: pending.mfaToken, code: '000000', recoveryCode: enrolled.recoveryCodes[2] } });
    expect(both.statusCode).toBe(400);
    const good = nextCode(h, enrolled.secret);
    typedCodes.add(good);
    const signedIn = await call('POST', '/api/auth/mfa/verify', { payload: { mfaToken: pending.mfaToken, code: good } });
    expect(signedIn.statusCode).toBe(200);
    const session = sessionFrom(signedIn) ?? '';
    // The spent token again, and a recovery-code sign-in.
    expect((await call('POST', '/api/auth/mfa/verify', { payload: { mfaToken: pending.mfaToken, code: nextCode(h, enrolled.secret) } })).statusCode).toBe(400);
    const p2 = (await call('POST', '/api/auth/login', { payload: { email: u.email, password: u.password } })).json<{ mfaToken: string }>();
    remember('mfa token 2', p2.mfaToken);
    expect((await call('POST', '/api/auth/mfa/verify', { payload: { mfaToken: p2.mfaToken, recoveryCode: enrolled.recoveryCodes[3] } })).statusCode).toBe(200);

    // Step-up with a wrong and a right code; a password where a factor is needed.
    typedCodes.add(wrongCode(h, enrolled.secret));
    expect((await call('POST', '/api/auth/step-up', { cookie: session, payload: { code: wrongCode(h, enrolled.secret) } })).statusCode).toBe(401);
    expect((await call('POST', '/api/auth/step-up', { cookie: session, payload: { recoveryCode: enrolled.recoveryCodes[4] } })).statusCode).toBe(200);
    // Regenerated codes, then disable with a wrong and a right factor.
    const regen = (await call('POST', '/api/me/mfa/recovery-codes', { cookie: session })).json<{ recoveryCodes: string[] }>();
    regen.recoveryCodes.forEach((c, i) => remember(`regenerated ${i}`, c));
    expect((await call('POST', '/api/me/mfa/disable', { cookie: session, payload: { recoveryCode: enrolled.recoveryCodes[5] } })).statusCode).toBe(401);
    const off = nextCode(h, enrolled.secret);
    typedCodes.add(off);
    expect((await call('POST', '/api/me/mfa/disable', { cookie: session, payload: { code: off } })).statusCode).toBe(200);
    expect(secrets.size).toBeGreaterThan(30);
  });

  it('none of them is in the logs', () => {
    const logs = h.logs.join('\n');
    expect(logs.length).toBeGreaterThan(0);
    for (const [name, value] of secrets) expect(logs.includes(value), name).toBe(false);
    for (const c of typedCodes) expect(new RegExp(`(?<![0-9])${c}(?![0-9])`).test(logs), `code ${c}`).toBe(false);
  });

  it('none of them is in an error answer', () => {
    expect(problems.length).toBeGreaterThan(5);
    const all = problems.join('\n');
    for (const [name, value] of secrets) expect(all.includes(value), name).toBe(false);
    for (const c of typedCodes) expect(new RegExp(`(?<![0-9])${c}(?![0-9])`).test(all), `code ${c}`).toBe(false);
  });

  it('none of them is in the audit trail (any org, any column)', async () => {
    const rows = await h.t.owner.query<{ j: string }>('select to_jsonb(a)::text as j from audit_events a');
    const all = rows.map((r) => r.j).join('\n');
    expect(all).toContain('auth.mfa_enabled');
    for (const [name, value] of secrets) expect(all.includes(value), name).toBe(false);
    for (const c of typedCodes) expect(new RegExp(`(?<![0-9a-f])${c}(?![0-9a-f])`).test(all), `code ${c}`).toBe(false);
  });

  it('none of them is in clear anywhere in the database', async () => {
    const tables = await h.t.owner.query<{ table_name: string }>(
      `select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`,
    );
    expect(tables.map((t) => t.table_name)).toEqual(expect.arrayContaining(['totp_credentials', 'recovery_codes', 'mfa_challenges']));
    for (const { table_name } of tables) {
      const rows = await h.t.owner.query<{ j: string }>(`select to_jsonb(t)::text as j from public."${table_name}" t`);
      const all = rows.map((r) => r.j).join('\n');
      for (const [name, value] of secrets) expect(all.includes(value), `${name} in ${table_name}`).toBe(false);
    }
  });
});
