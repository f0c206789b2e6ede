import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { userActorOf } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { mfaDisabled, recoveryCodes, type FactorProof, type IdentityService, type MfaService } from '../identity/index.js';
import { signedIn, steppedUp, type MyOrg } from './responses.js';
import { finishSignInOn, type CookieSettings } from './cookie.js';
import type { SignInService, StepUpMethod } from './sign-in.js';

const code = z.string().trim().regex(/^\d{6}$/, 'six digits');
const recoveryCode = z.string().trim().min(8).max(32);
/** Exactly one of a TOTP code or a recovery code. */
const factor = z
  .strictObject({ code: code.optional(), recoveryCode: recoveryCode.optional() })
  .refine((f) => Boolean(f.code) !== Boolean(f.recoveryCode), { message: 'send exactly one of code or recoveryCode' });

/**
 * Second factors as session state: completing a sign-in, confirming an enrollment, stepping up
 * for a sensitive action, turning MFA off. Enrollment itself and recovery codes are in identity.
 */
export function mfaRoutes(
  d: { signIn: SignInService; cookie: CookieSettings; identity: IdentityService; mfa: MfaService; listOrgs(userId: string): Promise<MyOrg[]> },
): AnyRoute[] {
  const tags = ['mfa'];
  return [
    defineRoute({
      method: 'POST', url: '/api/auth/mfa/verify', summary: 'Second sign-in step: a TOTP or recovery code for the pending sign-in (issues the session)', tags,
      auth: { mode: 'public', reason: 'the pending sign-in token from the password step is the credential' }, permission: 'none',
      rateLimit: 'mfa-verify', audit: { action: 'auth.login' },
      schema: { body: z.strictObject({ mfaToken: z.string().min(1).max(200), code: code.optional(), recoveryCode: recoveryCode.optional() }), response: signedIn },
      // token_invalid: the pending sign-in is unknown, spent or expired (or, from the sealer, the
      // stored TOTP secret does not open); invalid_credentials: a wrong code, a locked account, or
      // a reset that raced the sign-in; unauthenticated: the account is gone (getUser).
      // forbidden: a break-glass sign-in its owner may no longer use; sso_required: SSO enforcement
      // came on since the password step.
      errors: ['token_invalid', 'invalid_credentials', 'unauthenticated', 'sso_required', 'forbidden'],
      handler: async ({ ctx, body, reply, countChallenge }) => {
        if (Boolean(body.code) === Boolean(body.recoveryCode)) throw new AppError('validation_failed', 'send exactly one of code or recoveryCode');
        const challenge = await d.mfa.readChallenge(body.mfaToken);
        // Counted per pending sign-in only once it exists: a made-up token created no counter.
        await countChallenge(challenge.tokenHash);
        const method = await d.mfa.verifyFactor(ctx, challenge.userId, body as FactorProof, 'login');
        // Single use: of two requests racing with one token, one gets a session.
        await finishSignInOn(reply, d, ctx, {
          userId: challenge.userId, method, epoch: challenge.sessionEpoch, consume: (tx) => d.mfa.consumeChallenge(tx, challenge.tokenHash),
          // A second factor on top of an SSO sign-in: the session is still the org's SSO session.
          ...(challenge.sso ? { sso: { ...challenge.sso, idpMfa: false } } : {}),
          ...(challenge.breakGlassOrgId ? { breakGlassOrgId: challenge.breakGlassOrgId } : {}),
        });
        const user = await d.identity.getUser(challenge.userId);
        return { user, orgs: await d.listOrgs(challenge.userId) };
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/step-up', summary: 'Confirm it is you before sensitive actions (a second factor; your password if you have none)', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'mfa-verify', audit: { action: 'auth.step_up' },
      schema: { body: z.strictObject({ code: code.optional(), recoveryCode: recoveryCode.optional(), password: z.string().min(1).max(1024).optional() }), response: steppedUp },
      // token_invalid: the stored TOTP secret does not open (the sealer refuses a blob not sealed for this user).
      errors: ['invalid_credentials', 'token_invalid'],
      example: () => ({ password: 'not-the-password' }),
      handler: async ({ ctx, body }) => {
        const actor = userActorOf(ctx);
        const hasFactor = actor.session.mfaEnabled ?? false;
        let method: StepUpMethod;
        if (hasFactor) {
          // With a second factor, a password alone never counts: it is the factor a thief is likeliest to have.
          if (Boolean(body.code) === Boolean(body.recoveryCode) || body.password) {
            throw new AppError('validation_failed', 'send exactly one of code or recoveryCode');
          }
          method = await d.mfa.verifyFactor(ctx, actor.userId, body, 'step_up');
        } else {
          if (!body.password || body.code || body.recoveryCode) throw new AppError('validation_failed', 'send your password');
          await d.identity.reauthenticate(ctx, actor.userId, body.password);
          method = 'password';
        }
        return d.signIn.stepUp(ctx, method);
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/me/mfa/totp/confirm', summary: 'Confirm an authenticator app with its first code: MFA is on; returns ten recovery codes, once', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'mfa-verify', audit: { action: 'auth.mfa_enabled' }, stepUp: true,
      // One-time secret: the recovery codes leave in this answer only.
      schema: { body: z.strictObject({ code }), response: recoveryCodes }, example: () => ({ code: '000000' }),
      // conflict: no enrollment pending; invalid_credentials: a wrong code; token_invalid: the sealer.
      errors: ['conflict', 'invalid_credentials', 'token_invalid'],
      handler: async ({ ctx, body }) => {
        // confirmTotp also marks this session as proven with the new factor, in its transaction.
        return d.mfa.confirmTotp(ctx, userActorOf(ctx).userId, body.code);
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/me/mfa/disable', summary: 'Turn the authenticator app and recovery codes off (needs a fresh code or recovery code in the request; passkeys stay)', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'mfa-verify', audit: { action: 'auth.mfa_disabled' },
      schema: { body: factor, response: mfaDisabled }, example: () => ({ code: '000000' }),
      errors: ['invalid_credentials', 'token_invalid'],
      handler: async ({ ctx, body }) => {
        const actor = userActorOf(ctx);
        await d.mfa.verifyFactor(ctx, actor.userId, body, 'disable');
        return d.mfa.disable(ctx, actor.userId);
      },
    }),
  ];
}
