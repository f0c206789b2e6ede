import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { email } from '../../http/schemas.js';
import type { AuditWriter } from '../audit/index.js';
import { MAGIC_LINK_TTL_MS, mailboxNotice, type MagicLinkService, type MfaService } from '../identity/index.js';
import type { OrgService } from '../tenancy/index.js';
import { finishSignInOn, type CookieSettings } from './cookie.js';
import { loginAnswer } from './responses.js';
import { pendingSecondStep } from './second-step.js';
import type { SignInService } from './sign-in.js';

/**
 * Sign-in by mailed link. Asking sets the browser-binding cookie and answers the same for every
 * address; redeeming needs the link's token and that cookie, and ends like a password sign-in: a
 * session, or the second step the account owes.
 */
export function magicLinkRoutes(d: {
  magicLinks: MagicLinkService; signIn: SignInService; mfa: MfaService; audit: AuditWriter; orgs: OrgService; cookie: CookieSettings;
  ssoGate: { assertLocalSignIn(email: string): Promise<void> };
}): AnyRoute[] {
  const tags = ['auth'];
  // `__Host-` needs Secure: the same development exception as the session cookie.
  const bindingCookie = d.cookie.secure ? '__Host-palisade_link' : 'palisade_link';
  // Lax: the link is opened by a top-level navigation to this origin; the redeeming POST is same-site.
  const options = { path: '/', httpOnly: true, secure: d.cookie.secure, sameSite: 'lax' as const };
  return [
    defineRoute({
      method: 'POST', url: '/api/auth/magic-link', summary: 'Mail a single-use sign-in link for this browser (same answer for every email)', tags,
      auth: { mode: 'public', reason: 'signing in is how a session starts' }, permission: 'none',
      rateLimit: 'magic-link', accountLimitCapsMail: true, audit: { action: 'auth.magic_link_requested' }, status: 202,
      // sso_required: the address is in a domain whose org enforces SSO (a domain-level answer).
      schema: { body: z.strictObject({ email }), response: mailboxNotice }, errors: ['sso_required'],
      handler: async ({ ctx, body, reply, mailAllowed }) => {
        await d.ssoGate.assertLocalSignIn(body.email);
        const cookies = (reply.request.cookies ?? {}) as Record<string, string | undefined>;
        // One binding per browser: asking again keeps earlier links of this browser usable.
        const current = cookies[bindingCookie];
        const binding = current && /^[A-Za-z0-9_-]{43}$/.test(current) ? current : d.magicLinks.newBinding();
        await d.magicLinks.request(ctx, body.email, binding, mailAllowed);
        reply.setCookie(bindingCookie, binding, { ...options, maxAge: MAGIC_LINK_TTL_MS / 1000 });
        return { status: 'If the address has an account, a sign-in link is on its way. Open it in this browser.' };
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/magic-link/verify', summary: 'Sign in with a mailed link, in the browser that asked for it', tags,
      auth: { mode: 'public', reason: 'the link and the asking browser\u2019s cookie are the credential' }, permission: 'none',
      rateLimit: 'magic-link', audit: { action: 'auth.login', or: ['auth.login_second_factor_pending', 'auth.login_failed'] },
      schema: { body: z.strictObject({ token: z.string().min(1).max(200) }), response: loginAnswer },
      // token_invalid: unknown, spent, expired, another browser's, or voided by a reset or sign-out everywhere.
      // sso_required: the org switched SSO enforcement on since the link was mailed.
      errors: ['token_invalid', 'invalid_credentials', 'sso_required'],
      handler: async ({ ctx, body, reply }) => {
        const cookies = (reply.request.cookies ?? {}) as Record<string, string | undefined>;
        const user = await d.magicLinks.redeem(ctx, body.token, cookies[bindingCookie]);
        if (user.mfaEnabled) {
          // Refused now rather than after the second factor (the sign-in service would refuse it then).
          await d.ssoGate.assertLocalSignIn(user.email);
          return pendingSecondStep(d, ctx, user);
        }
        await finishSignInOn(reply, d, ctx, { userId: user.id, method: 'magic_link', epoch: user.sessionEpoch });
        return { user: { id: user.id, email: user.email, name: user.name }, orgs: await d.orgs.listMine(user.id) };
      },
    }),
  ];
}
