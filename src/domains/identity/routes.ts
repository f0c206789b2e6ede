import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { email } from '../../http/schemas.js';
import { userActorOf } from '../../kernel/context.js';
import type { MfaService } from './mfa.js';
import type { IdentityService } from './service.js';

const userOf = userActorOf;

export function identityRoutes(identity: IdentityService, mfa: MfaService): AnyRoute[] {
  const tags = ['auth'];
  return [
    defineRoute({
      method: 'GET', url: '/api/me/mfa', summary: 'Your second factors', tags: ['mfa'],
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { none: 'read' }, schema: {},
      handler: ({ ctx }) => mfa.status(userOf(ctx).userId),
    }),
    defineRoute({
      method: 'POST', url: '/api/me/mfa/totp', summary: 'Start enrolling an authenticator app: secret, otpauth URI and QR code (confirm with a code)', tags: ['mfa'],
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.mfa_enrollment_started' },
      stepUp: true, status: 201, schema: {},
      handler: ({ ctx }) => {
        const actor = userOf(ctx);
        return mfa.enrollTotp(ctx, { id: actor.userId, email: actor.email });
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/me/mfa/recovery-codes', summary: 'Replace your recovery codes (the old ones stop working); shown once', tags: ['mfa'],
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.recovery_codes_regenerated' },
      stepUp: true, schema: {},
      handler: ({ ctx }) => mfa.regenerateRecoveryCodes(ctx, userOf(ctx).userId),
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/password-reset/request', summary: 'Mail a single-use reset link (same answer for every email)', tags,
      auth: { mode: 'public', reason: 'someone who forgot their password has no session' }, permission: 'none',
      rateLimit: 'password-reset', audit: { action: 'auth.password_reset_requested' }, status: 202,
      schema: { body: z.strictObject({ email }) },
      handler: async ({ ctx, body }) => {
        await identity.requestReset(ctx, body.email);
        return { status: 'If the address has an account, a reset link is on its way.' };
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/password-reset/confirm', summary: 'Set a new password with a reset token (ends every session)', tags,
      auth: { mode: 'public', reason: 'the reset token is the credential' }, permission: 'none',
      rateLimit: 'password-reset', audit: { action: 'auth.password_reset' }, status: 204,
      schema: { body: z.strictObject({ token: z.string().min(1).max(200), password: z.string().min(1).max(1024) }) },
      handler: async ({ ctx, body }) => identity.confirmReset(ctx, body.token, body.password),
    }),
  ];
}
