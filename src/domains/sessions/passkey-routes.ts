import type { AuthenticationResponseJSON } from '@simplewebauthn/server';
import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { userActorOf } from '../../kernel/context.js';
import { credentialJson, passkeyAssertionStart, type IdentityService, type Lockout, type MfaService, type PasskeyService } from '../identity/index.js';
import { signedIn, steppedUp, type MyOrg } from './responses.js';
import { finishSignInOn, type CookieSettings } from './cookie.js';
import type { SignInService } from './sign-in.js';

const ceremony = { ceremonyToken: z.string().min(1).max(200), response: credentialJson };
const asAssertion = (r: unknown) => r as AuthenticationResponseJSON;
const example = () => ({ ceremonyToken: 'pal_wac_x', response: { id: 'AA', rawId: 'AA', type: 'public-key', response: {} } });

/** Signing in with a passkey, using one as the second factor, and stepping up with one. */
export function passkeySessionRoutes(
  d: { signIn: SignInService; cookie: CookieSettings; passkeys: PasskeyService; mfa: MfaService; identity: IdentityService; lockout: Lockout; listOrgs(userId: string): Promise<MyOrg[]> },
): AnyRoute[] {
  const tags = ['passkeys'];
  const signedInAs = async (userId: string) => ({ user: await d.identity.getUser(userId), orgs: await d.listOrgs(userId) });
  return [
    defineRoute({
      method: 'POST', url: '/api/auth/passkey/options', summary: 'WebAuthn assertion options: for a passkey sign-in, or (with mfaToken) the second step of a password sign-in', tags,
      auth: { mode: 'public', reason: 'a passkey ceremony starts before anyone is signed in' }, permission: 'none',
      rateLimit: 'login', audit: { none: 'a sign-in ceremony changes no account (audited when it names a pending sign-in\u2019s user)' },
      schema: { body: z.strictObject({ mfaToken: z.string().min(1).max(200).optional() }), response: passkeyAssertionStart },
      // token_invalid: the pending sign-in is unknown, spent or expired; conflict: its user has no passkey.
      errors: ['token_invalid', 'conflict'],
      handler: async ({ ctx, body }) => {
        if (!body.mfaToken) return d.passkeys.assertionOptions(ctx, 'sign_in', null);
        const pending = await d.mfa.readChallenge(body.mfaToken);
        return d.passkeys.assertionOptions(ctx, 'second_factor', pending.userId);
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/passkey/login', summary: 'Sign in with a passkey (discoverable, user-verified: no password needed)', tags,
      auth: { mode: 'public', reason: 'signing in is how a session starts' }, permission: 'none',
      rateLimit: 'login', audit: { action: 'auth.login' },
      schema: { body: z.strictObject(ceremony), response: signedIn }, example,
      // token_invalid: the ceremony is unknown, spent or expired; invalid_credentials: the assertion
      // does not verify; unauthenticated: the account is gone (getUser).
      // sso_required: the account's domain is under its org's SSO enforcement.
      errors: ['token_invalid', 'invalid_credentials', 'unauthenticated', 'sso_required'],
      handler: async ({ ctx, body, reply }) => {
        const { userId } = await d.passkeys.verifyAssertion(ctx, 'sign_in', body.ceremonyToken, asAssertion(body.response), null);
        await finishSignInOn(reply, d, ctx, { userId, method: 'passkey' });
        return signedInAs(userId);
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/mfa/passkey', summary: 'Second sign-in step with a passkey (issues the session)', tags,
      auth: { mode: 'public', reason: 'the pending sign-in token from the password step is the credential' }, permission: 'none',
      rateLimit: 'mfa-verify', audit: { action: 'auth.login' },
      schema: { body: z.strictObject({ mfaToken: z.string().min(1).max(200), ...ceremony }), response: signedIn },
      // invalid_credentials also when a reset raced the sign-in (the epoch).
      // forbidden: a break-glass sign-in its owner may no longer use; sso_required: SSO enforcement.
      errors: ['token_invalid', 'invalid_credentials', 'unauthenticated', 'sso_required', 'forbidden'],
      handler: async ({ ctx, body, reply, countChallenge }) => {
        const pending = await d.mfa.readChallenge(body.mfaToken);
        await countChallenge(pending.tokenHash);
        await d.passkeys.verifyAssertion(ctx, 'second_factor', body.ceremonyToken, asAssertion(body.response), pending.userId);
        await d.lockout.succeeded(pending.userId);
        await finishSignInOn(reply, d, ctx, {
          userId: pending.userId, method: 'passkey', epoch: pending.sessionEpoch, consume: (tx) => d.mfa.consumeChallenge(tx, pending.tokenHash),
          ...(pending.sso ? { sso: { ...pending.sso, idpMfa: false } } : {}),
          ...(pending.breakGlassOrgId ? { breakGlassOrgId: pending.breakGlassOrgId } : {}),
        });
        return signedInAs(pending.userId);
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/me/passkeys/assertion-options', summary: 'WebAuthn assertion options to step up with one of your passkeys', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.passkey_challenge' },
      schema: { response: passkeyAssertionStart },
      // conflict: no passkey is registered.
      errors: ['conflict'],
      handler: ({ ctx }) => d.passkeys.assertionOptions(ctx, 'step_up', userActorOf(ctx).userId),
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/step-up/passkey', summary: 'Confirm it is you with a passkey before sensitive actions', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'mfa-verify', audit: { action: 'auth.step_up' },
      schema: { body: z.strictObject(ceremony), response: steppedUp }, example,
      errors: ['token_invalid', 'invalid_credentials'],
      handler: async ({ ctx, body }) => {
        const actor = userActorOf(ctx);
        await d.passkeys.verifyAssertion(ctx, 'step_up', body.ceremonyToken, asAssertion(body.response), actor.userId);
        return d.signIn.stepUp(ctx, 'passkey');
      },
    }),
  ];
}
