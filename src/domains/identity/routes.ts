import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { email, userText } from '../../http/schemas.js';
import { userActorOf } from '../../kernel/context.js';
import type { MfaService } from './mfa.js';
import { mailboxNotice, mfaStatus, recoveryCodes, totpEnrollment } from './responses.js';
import { REGISTRATION_ANSWER, type IdentityService } from './service.js';

// Bounded before hashing so that nobody makes argon2 chew a megabyte.
const password = z.string().min(1).max(1024);
const token = z.string().min(1).max(200);

export function identityRoutes(identity: IdentityService, mfa: MfaService): AnyRoute[] {
  const tags = ['auth'];
  return [
    defineRoute({
      method: 'POST', url: '/api/auth/register', summary: 'Create an account; a verification link is mailed (same answer for every email)', tags,
      auth: { mode: 'public', reason: 'creating an account is how a user first arrives' }, permission: 'none',
      rateLimit: 'register', accountLimitCapsMail: true, audit: { action: 'auth.registered', or: ['auth.registration_duplicate'] }, status: 202,
      schema: { body: z.strictObject({ email, password, name: userText(100) }), response: mailboxNotice },
      // sso_required: the address is in a domain whose org enforces SSO (its IdP creates the account).
      errors: ['weak_password', 'sso_required'],
      example: () => ({ email: 'new-user@example.com', password: 'a-long-enough-passphrase-42', name: 'New User' }),
      handler: async ({ ctx, body, mailAllowed }) => {
        await identity.register(ctx, body, mailAllowed);
        return REGISTRATION_ANSWER;
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/verify-email', summary: 'Verify your email address: the mailed link\u2019s token and the account\u2019s password', tags,
      auth: { mode: 'public', reason: 'an unverified account cannot sign in: the mailed token and the password are the credential' }, permission: 'none',
      rateLimit: 'email-verify', audit: { action: 'auth.email_verified' }, status: 204,
      schema: { body: z.strictObject({ token, password }) },
      // A wrong password counts toward the lockout: the same answer as a wrong sign-in.
      errors: ['token_invalid', 'invalid_credentials'],
      handler: async ({ ctx, body }) => identity.verifyEmail(ctx, body.token, body.password),
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/verify-email/resend', summary: 'Mail a new verification link (same answer for every email)', tags,
      auth: { mode: 'public', reason: 'an unverified account cannot sign in to ask' }, permission: 'none',
      rateLimit: 'email-verify', accountLimitCapsMail: true, audit: { action: 'auth.email_verification_requested' }, status: 202,
      schema: { body: z.strictObject({ email }), response: mailboxNotice }, errors: [],
      handler: async ({ ctx, body, mailAllowed }) => {
        await identity.resendVerification(ctx, body.email, mailAllowed);
        return { status: 'If the address has an unverified account, a new link is on its way.' };
      },
    }),
    defineRoute({
      method: 'GET', url: '/api/me/mfa', summary: 'Your second factors', tags: ['mfa'],
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { response: mfaStatus }, errors: [],
      handler: ({ ctx }) => mfa.status(userActorOf(ctx).userId),
    }),
    defineRoute({
      method: 'POST', url: '/api/me/mfa/totp', summary: 'Start enrolling an authenticator app: secret, otpauth URI and QR code (confirm with a code)', tags: ['mfa'],
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.mfa_enrollment_started' },
      stepUp: true, status: 201,
      // One-time secret: the TOTP secret, its otpauth URI and QR code leave in this answer only.
      schema: { response: totpEnrollment },
      // conflict: an authenticator app is already enabled.
      errors: ['conflict'],
      handler: ({ ctx }) => {
        const actor = userActorOf(ctx);
        return mfa.enrollTotp(ctx, actor.userId);
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/me/mfa/recovery-codes', summary: 'Replace your recovery codes (the old ones stop working); shown once', tags: ['mfa'],
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.recovery_codes_regenerated' },
      stepUp: true,
      // One-time secret: the new recovery codes leave in this answer only.
      schema: { response: recoveryCodes },
      // conflict: no second factor to recover.
      errors: ['conflict'],
      handler: ({ ctx }) => mfa.regenerateRecoveryCodes(ctx, userActorOf(ctx).userId),
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/password-reset/request', summary: 'Mail a single-use reset link (same answer for every email)', tags,
      auth: { mode: 'public', reason: 'someone who forgot their password has no session' }, permission: 'none',
      rateLimit: 'password-reset', accountLimitCapsMail: true, audit: { action: 'auth.password_reset_requested' }, status: 202,
      // sso_required: the address is in a domain whose org enforces SSO (a domain-level answer).
      schema: { body: z.strictObject({ email }), response: mailboxNotice }, errors: ['sso_required'],
      handler: async ({ ctx, body, mailAllowed }) => {
        await identity.requestReset(ctx, body.email, mailAllowed);
        return { status: 'If the address has an account, a reset link is on its way.' };
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/password-reset/confirm', summary: 'Set a new password with a reset token (ends every session)', tags,
      auth: { mode: 'public', reason: 'the reset token is the credential' }, permission: 'none',
      rateLimit: 'password-reset', audit: { action: 'auth.password_reset' }, status: 204,
      schema: { body: z.strictObject({ token, password }) },
      errors: ['token_invalid', 'weak_password', 'sso_required'],
      handler: async ({ ctx, body }) => identity.confirmReset(ctx, body.token, body.password),
    }),
  ];
}
