/**
 * Accounts made the way a person makes one: register, open the verification mail in the
 * development outbox, confirm the link with the password, sign in. Suites that need a new
 * user who can sign in or accept an invitation use `signUp`; the verification flow itself is
 * tested in src/domains/identity/email-verification.test.ts.
 */
import type { LightMyRequestResponse } from 'fastify';
import type { MailMessage } from '../../src/domains/mail/index.js';
import { ORIGIN, type TestApp } from './app.js';

export const SIGN_UP_PASSWORD = 'Signed-up-passphrase-2026-long';
export const VERIFICATION_TOKEN_RE = /pal_emv_[A-Za-z0-9_-]{43}/g;

export interface SignedUp {
  id: string;
  email: string;
  password: string;
  /** A Cookie header of the session the sign-in made. */
  cookie: string;
}

const post = (h: TestApp, url: string, payload: object): Promise<LightMyRequestResponse> =>
  h.built.app.inject({ method: 'POST', url, headers: { origin: ORIGIN }, payload });

export const register = (h: TestApp, body: { email: string; password: string; name: string }) => post(h, '/api/auth/register', body);
export const verifyEmail = (h: TestApp, token: string, password: string) => post(h, '/api/auth/verify-email', { token, password });
export const resendVerification = (h: TestApp, email: string) => post(h, '/api/auth/verify-email/resend', { email });

/** Every message the outbox holds for `email`, oldest first. */
export function mailTo(h: TestApp, email: string): Promise<MailMessage[]> {
  return h.t.db.withSystem('test reads the outbox', (tx) => h.built.services.mail.read(tx, email));
}

/** The verification tokens mailed to `email`, oldest first. */
export async function verificationTokens(h: TestApp, email: string): Promise<string[]> {
  return (await mailTo(h, email)).flatMap((m) => m.body.match(VERIFICATION_TOKEN_RE) ?? []);
}

export async function latestVerificationToken(h: TestApp, email: string): Promise<string> {
  const token = (await verificationTokens(h, email)).at(-1);
  if (!token) throw new Error(`no verification mail for ${email}`);
  return token;
}

/** Registers `email`, verifies it through the mailed link and signs in. */
export async function signUp(h: TestApp, input: { email: string; password?: string; name?: string }): Promise<SignedUp> {
  const password = input.password ?? SIGN_UP_PASSWORD;
  const reg = await register(h, { email: input.email, password, name: input.name ?? 'Signed-up user' });
  if (reg.statusCode !== 202) throw new Error(`register failed: ${reg.statusCode} ${reg.body}`);
  const verified = await verifyEmail(h, await latestVerificationToken(h, input.email), password);
  if (verified.statusCode !== 204) throw new Error(`verify failed: ${verified.statusCode} ${verified.body}`);
  const login = await post(h, '/api/auth/login', { email: input.email, password });
  if (login.statusCode !== 200) throw new Error(`login failed: ${login.statusCode} ${login.body}`);
  const set = login.cookies.find((c) => c.name === h.built.cookie.name);
  if (!set) throw new Error('no session cookie');
  return { id: login.json<{ user: { id: string } }>().user.id, email: input.email, password, cookie: `${h.built.cookie.name}=${set.value}` };
}
