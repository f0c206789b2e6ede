import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { email } from '../../http/schemas.js';
import type { IdentityService } from './service.js';

export function identityRoutes(identity: IdentityService): AnyRoute[] {
  const tags = ['auth'];
  return [
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
