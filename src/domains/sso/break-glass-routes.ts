import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { email } from '../../http/schemas.js';
import { AppError } from '../../kernel/errors.js';
import type { AuditWriter } from '../audit/index.js';
import type { IdentityService, MfaService } from '../identity/index.js';
import { pendingSecondStep, secondFactorPending } from '../sessions/index.js';
import type { SsoEnforcement } from './enforcement.js';

/**
 * Break-glass: an owner the org named keeps a local way in while it enforces SSO (the IdP is
 * down, or misconfigured). Password first, here; then the second factor through the usual second
 * step (POST /api/auth/mfa/verify or /api/auth/mfa/passkey), whose session carries the org: the
 * sign-in service writes the evidence (audit event, webhook, mail to the other owners) before it
 * issues a session of at most an hour.
 */
export function breakGlassRoutes(d: { enforcement: SsoEnforcement; identity: IdentityService; mfa: MfaService; audit: AuditWriter }): AnyRoute[] {
  return [
    defineRoute({
      method: 'POST', url: '/api/auth/break-glass', summary: 'Break-glass sign-in of an owner under SSO enforcement: the password step (a second factor follows; the session lasts at most an hour)', tags: ['sso'],
      auth: { mode: 'public', reason: 'the identity provider may be what is broken: the password and then a second factor are the credential' },
      permission: 'none', rateLimit: 'login', audit: { action: 'auth.login_second_factor_pending', or: ['auth.sso_required'] },
      schema: { body: z.strictObject({ email, password: z.string().min(1).max(1024) }), response: secondFactorPending },
      // conflict: the address is under no SSO enforcement (sign in as usual); invalid_credentials:
      // the password step failed; forbidden: not a break-glass owner, or no second factor to give.
      errors: ['conflict', 'invalid_credentials', 'email_unverified', 'forbidden'],
      example: () => ({ email: 'owner@example.com', password: 'not-the-password' }),
      handler: async ({ ctx, body }) => {
        const rule = await d.enforcement.ruleFor(body.email);
        if (!rule) throw new AppError('conflict', 'this address is under no SSO enforcement: sign in with POST /api/auth/login');
        const user = await d.identity.verifyCredentials(ctx, body.email, body.password);
        const refuse = async (why: string) => {
          await d.audit.appendStandalone(rule.orgId, ctx, {
            action: 'auth.sso_required', target: { type: 'user', id: user.id }, actor: { type: 'user', id: user.id }, result: 'failure',
            details: { method: 'break_glass', reason: why },
          });
          return new AppError('forbidden', why);
        };
        if (!rule.breakGlassOwners.includes(user.id)) throw await refuse('this account is not a break-glass owner of the organization');
        // Password AND second factor: an account without one cannot break glass.
        if (!user.mfaEnabled) throw await refuse('a break-glass sign-in needs a second factor, and this account has none');
        return pendingSecondStep(d, ctx, user, { breakGlassOrgId: rule.orgId });
      },
    }),
  ];
}
