/**
 * The sign-in and factor flows through the HTTP API: the password step, the second step, step-up,
 * TOTP enrollment and codes, passkey registration with a software authenticator.
 */
import type { LightMyRequestResponse } from 'fastify';
import { totpCodeAt } from '../../src/domains/identity/index.js';
import type { TestApp } from './app.js';
import type { SoftAuthenticator } from './authenticator.js';
import { call, sessionFrom, type CallOpts } from './client.js';
import type { TestUser } from './users.js';

export const login = (h: TestApp, email: string, password: string, o: Omit<CallOpts, 'payload'> = {}) =>
  call(h, 'POST', '/api/auth/login', { ...o, payload: { email, password } });

export const verifyMfa = (h: TestApp, mfaToken: string, proof: { code?: string; recoveryCode?: string }, o: Omit<CallOpts, 'payload'> = {}) =>
  call(h, 'POST', '/api/auth/mfa/verify', { ...o, payload: { mfaToken, ...proof } });

export const stepUp = (h: TestApp, cookie: string, body: Record<string, string>) => call(h, 'POST', '/api/auth/step-up', { cookie, payload: body });

/** The password step of an account with MFA: the pending token. */
export async function pendingToken(h: TestApp, user: TestUser): Promise<string> {
  const res = await login(h, user.email, user.password);
  if (res.statusCode !== 200 || !res.json<{ mfaRequired?: boolean }>().mfaRequired) throw new Error(`expected a pending sign-in: ${res.statusCode} ${res.body}`);
  return res.json<{ mfaToken: string }>().mfaToken;
}

export interface Enrolled {
  secret: string;
  otpauthUri: string;
  qrCode: string;
  recoveryCodes: string[];
  /** The session that enrolled (now MFA-verified and stepped up). */
  cookie: string;
}

/** Enrolls and confirms TOTP through the API with a fresh password session. */
export async function enrollTotp(h: TestApp, user: TestUser, cookie?: string): Promise<Enrolled> {
  const c = cookie ?? (await h.cookieFor(user.email));
  const start = await call(h, 'POST', '/api/me/mfa/totp', { cookie: c });
  if (start.statusCode !== 201) throw new Error(`enroll failed: ${start.statusCode} ${start.body}`);
  const e = start.json<{ secret: string; otpauthUri: string; qrCode: string }>();
  const confirm = await call(h, 'POST', '/api/me/mfa/totp/confirm', { cookie: c, payload: { code: totpCodeAt(e.secret, h.clock.now()) } });
  if (confirm.statusCode !== 200) throw new Error(`confirm failed: ${confirm.statusCode} ${confirm.body}`);
  return { ...e, recoveryCodes: confirm.json<{ recoveryCodes: string[] }>().recoveryCodes, cookie: c };
}

/**
 * A code for a step no code was accepted in yet: the clock moves on 30 s first (every accepted
 * code raises the account's last step, and an older or equal step is refused as a replay).
 */
export function nextCode(h: TestApp, secret: string): string {
  h.clock.advance(30_000);
  return totpCodeAt(secret, h.clock.now());
}

/** A TOTP code guaranteed wrong at the current time (and within ±1 step). */
export function wrongCode(h: TestApp, secret: string): string {
  const now = h.clock.now().getTime();
  const valid = new Set([-30_000, 0, 30_000].map((d) => totpCodeAt(secret, new Date(now + d))));
  for (let i = 0; ; i++) {
    const c = String((123_456 + i * 7919) % 1_000_000).padStart(6, '0');
    if (!valid.has(c)) return c;
  }
}

/** Full two-step sign-in: the session cookie. */
export async function signInWithMfa(h: TestApp, user: TestUser, secret: string): Promise<string> {
  const token = await pendingToken(h, user);
  const res = await verifyMfa(h, token, { code: nextCode(h, secret) });
  const cookie = sessionFrom(res);
  if (res.statusCode !== 200 || !cookie) throw new Error(`mfa verify failed: ${res.statusCode} ${res.body}`);
  return cookie;
}

/** Adds a passkey through the API (registration options + attestation) on `cookie`'s session. */
export async function addPasskey(h: TestApp, cookie: string, auth: SoftAuthenticator, name = 'Laptop'): Promise<LightMyRequestResponse> {
  const o = await call(h, 'POST', '/api/me/passkeys/registration-options', { cookie });
  if (o.statusCode !== 200) return o;
  const { ceremonyToken, options } = o.json<{ ceremonyToken: string; options: never }>();
  return call(h, 'POST', '/api/me/passkeys', { cookie, payload: { ceremonyToken, name, response: auth.create(options) } });
}

/** The ids of the passkeys of `cookie`'s user, as the API lists them. */
export async function passkeyIds(h: TestApp, cookie: string): Promise<string[]> {
  return ((await call(h, 'GET', '/api/me/passkeys', { cookie })).json<{ passkeys?: { id: string }[] }>().passkeys ?? []).map((p) => p.id);
}
