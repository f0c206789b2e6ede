import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { uuid } from '../../http/schemas.js';
import type { AuditWriter } from '../audit/index.js';
import type { MfaService } from '../identity/index.js';
import { finishSignInOn, pendingSecondStep, secondFactorPending, type CookieSettings, type SignInService } from '../sessions/index.js';
import { FLOW_TTL_SECONDS, flowCookieName, flowCookieOptions as flowCookieAttributes, withParam } from './flow-state.js';
import { OIDC_CALLBACK_PATH } from './connections.js';
import type { SsoSignIn } from './sign-in.js';
import type { SamlSignIn } from './saml.js';
import { setSamlFlowCookie } from './saml-routes.js';

const redirect = z.object({ location: z.string() });

const startQuery = z
  .strictObject({
    email: z.string().trim().min(3).max(254).optional().meta({ description: 'Routes to the org that verified the address\u2019s domain' }),
    org: uuid.optional().meta({ description: 'The org, with `connection` (or its oldest enabled connection)' }),
    connection: uuid.optional(),
    returnTo: z.string().max(512).optional().meta({ description: 'A path on this origin to land on afterwards (anything else: /)' }),
  })
  .refine((q) => q.email !== undefined || q.org !== undefined, 'name an email address or an org');

// What an OpenID Provider sends back (RFC 6749 4.1.2, 9207); openid-client reads the raw query.
const callbackQuery = z.looseObject({
  code: z.string().max(2048).optional(),
  state: z.string().max(512).optional(),
  iss: z.string().max(2048).optional(),
  error: z.string().max(256).optional(),
  error_description: z.string().max(2048).optional(),
});

/**
 * The browser's side of single sign-on: start (a redirect to the IdP, the flow sealed in a
 * cookie), the IdP's callback (a session, or a handover to the second factor), and the
 * handover's redemption. Each ends where every sign-in ends: the sign-in service.
 */
export function ssoAuthRoutes(d: { sso: SsoSignIn; saml: SamlSignIn; signIn: SignInService; cookie: CookieSettings; mfa: MfaService; audit: AuditWriter }): AnyRoute[] {
  const tags = ['sso'];
  const flowCookie = flowCookieName(d.cookie.secure);
  const flowCookieOptions = flowCookieAttributes(d.cookie.secure);
  return [
    defineRoute({
      method: 'GET', url: '/api/auth/sso/start', summary: 'Start a single sign-on: the browser is sent to the org\u2019s identity provider', tags,
      auth: { mode: 'public', reason: 'single sign-on is how a session starts' }, permission: 'none', rateLimit: 'login',
      audit: { none: 'nothing is stored: the flow lives in the browser\u2019s cookie until the callback' },
      status: 302, schema: { query: startQuery, response: redirect },
      // not_found: no verified domain, or no enabled connection; sso_failed: the IdP's discovery failed.
      errors: ['not_found', 'sso_failed'],
      handler: async ({ ctx, query, reply }) => {
        // A SAML connection: an AuthnRequest, its id in the SAML flow cookie (SameSite=None: the IdP posts back cross-site).
        const saml = await d.saml.startFor({ email: query.email, orgId: query.org, connectionId: query.connection, returnTo: query.returnTo });
        if (saml) {
          setSamlFlowCookie(reply, d.cookie.secure, saml.flow);
          return { location: saml.location };
        }
        const started = await d.sso.start(ctx, { email: query.email, orgId: query.org, connectionId: query.connection, returnTo: query.returnTo });
        reply.setCookie(flowCookie, started.flow, { ...flowCookieOptions, maxAge: FLOW_TTL_SECONDS });
        return { location: started.location };
      },
    }),
    defineRoute({
      method: 'GET', url: OIDC_CALLBACK_PATH, summary: 'The OpenID Provider\u2019s redirect back: signs in, or hands over to the second factor', tags,
      auth: { mode: 'public', reason: 'the browser returns from the identity provider; the flow cookie and the code are the credential' },
      permission: 'none', rateLimit: 'login', audit: { action: 'auth.login', or: ['auth.login_second_factor_pending', 'auth.sso_failed', 'sso.connection_tested', 'sso.identity_linked'] },
      status: 302, schema: { query: callbackQuery, response: redirect },
      // sso_failed: state, PKCE, token or account refused; invalid_credentials: a sign-out everywhere raced it.
      // sso_required: the account's domain is under another org's SSO enforcement.
      errors: ['sso_failed', 'invalid_credentials', 'sso_required'],
      handler: async ({ ctx, reply }) => {
        const cookies = (reply.request.cookies ?? {}) as Record<string, string | undefined>;
        // Each flow is tried once, whatever the outcome.
        reply.clearCookie(flowCookie, flowCookieOptions);
        const raw = reply.request.url;
        const outcome = await d.sso.callback(ctx, raw.includes('?') ? raw.slice(raw.indexOf('?') + 1) : '', cookies[flowCookie]);
        // An admin's test run: nobody signs in; the page reads the run (its id is no credential).
        if ('testId' in outcome) return { location: withParam(outcome.returnTo, 'sso_test', outcome.testId) };
        // A signed-in member linked their identity: the session they have goes on.
        if ('linked' in outcome) return { location: withParam(outcome.returnTo, 'sso_linked', '1') };
        if (outcome.secondFactorNeeded) {
          // No token in this URL beyond a one-minute, single-use code the page redeems at once.
          const code = await d.sso.mintHandover(outcome);
          return { location: withParam(outcome.returnTo, 'sso_handover', code) };
        }
        await finishSignInOn(reply, d, ctx, { userId: outcome.userId, method: 'sso', epoch: outcome.sessionEpoch, sso: outcome.sso });
        return { location: outcome.returnTo };
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/sso/handover', summary: 'Redeem the SSO or social sign-in handover code: the second step the account still owes', tags,
      auth: { mode: 'public', reason: 'the single-use handover code from the SSO callback is the credential' }, permission: 'none',
      rateLimit: 'login', audit: { action: 'auth.login_second_factor_pending' },
      schema: { body: z.strictObject({ code: z.string().min(1).max(200) }), response: secondFactorPending },
      errors: ['token_invalid'],
      handler: async ({ ctx, body }) => {
        const pending = await d.sso.redeemHandover(body.code);
        return pendingSecondStep(d, ctx, { id: pending.userId, sessionEpoch: pending.sessionEpoch }, { sso: pending.sso });
      },
    }),
  ];
}
