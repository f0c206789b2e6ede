import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { timestamp } from '../../http/schemas.js';
import { userActorOf } from '../../kernel/context.js';
import type { AuditWriter } from '../audit/index.js';
import type { MfaService } from '../identity/index.js';
import { finishSignInOn, type CookieSettings, type SignInService } from '../sessions/index.js';
import { FLOW_TTL_SECONDS, flowCookieName, flowCookieOptions as flowCookieAttributes, withParam } from '../sso/index.js';
import type { SocialIdentities } from './identities.js';
import type { SocialSignIn } from './sign-in.js';

const redirect = z.object({ location: z.string() });
const providerParams = z.strictObject({
  provider: z.string().regex(/^[a-z][a-z0-9-]{1,31}$/, 'a provider id').meta({ description: 'google, github, or a generic OIDC provider the deployment named' }),
});
const returnTo = z.string().max(512).optional().meta({ description: 'A path on this origin to land on afterwards (anything else: /)' });

// What the provider sends back (RFC 6749 4.1.2, 9207); the protocol reads the raw query.
const callbackQuery = z.looseObject({
  code: z.string().max(2048).optional(),
  state: z.string().max(512).optional(),
  iss: z.string().max(2048).optional(),
  error: z.string().max(256).optional(),
  error_description: z.string().max(2048).optional(),
});

const linkedIdentities = z.object({
  identities: z.array(z.object({
    provider: z.string(),
    email: z.string().meta({ description: 'What the provider said at the link or the last sign-in (never used to find the account)' }),
    linkedAt: timestamp,
    lastSignInAt: timestamp.nullable(),
  })),
});

export const socialProviderList = z.object({
  providers: z.array(z.object({
    id: z.string(),
    name: z.string().meta({ description: 'For the button: Google, GitHub, or the name the deployment gave' }),
    protocol: z.enum(['oidc', 'oauth2']),
    start: z.string().meta({ description: 'Where the sign-in button sends the browser (add ?returnTo=/path)' }),
  })),
});

/**
 * Social sign-in through the deployment's providers: the list for a console's buttons, start (a
 * redirect, the flow sealed in the SSO flow cookie), the provider's callback (a session through
 * the sign-in service, or the SSO handover to the second factor) and linking from a session.
 */
export function socialRoutes(d: {
  social: SocialSignIn; identities: SocialIdentities; signIn: SignInService; cookie: CookieSettings; mfa: MfaService; audit: AuditWriter;
}): AnyRoute[] {
  const tags = ['social'];
  const flowCookie = flowCookieName(d.cookie.secure);
  const flowCookieOptions = flowCookieAttributes(d.cookie.secure);
  return [
    defineRoute({
      method: 'GET', url: '/api/auth/social/providers', summary: 'The social sign-in providers this deployment enabled (for sign-in buttons)', tags,
      auth: { mode: 'public', reason: 'the sign-in page lists them before anyone is signed in' }, permission: 'none', rateLimit: 'probe',
      audit: { none: 'read of the deployment\u2019s configuration (ids and names only)' },
      schema: { response: socialProviderList }, errors: [],
      handler: () => Promise.resolve({ providers: d.social.list().map((p) => ({ ...p, start: `/api/auth/social/${p.id}/start` })) }),
    }),
    defineRoute({
      method: 'GET', url: '/api/auth/social/:provider/start', summary: 'Start a social sign-in: the browser is sent to the provider', tags,
      auth: { mode: 'public', reason: 'social sign-in is how a session starts' }, permission: 'none', rateLimit: 'login',
      audit: { none: 'nothing is stored: the flow lives in the browser\u2019s cookie until the callback' },
      status: 302, schema: { params: providerParams, query: z.strictObject({ returnTo }), response: redirect },
      // not_found: the provider is not configured; sso_failed: its discovery document could not be read.
      errors: ['not_found', 'sso_failed'],
      handler: async ({ ctx, params, query, reply }) => {
        const started = await d.social.start(ctx, params.provider, query.returnTo);
        reply.setCookie(flowCookie, started.flow, { ...flowCookieOptions, maxAge: FLOW_TTL_SECONDS });
        return { location: started.location };
      },
    }),
    defineRoute({
      method: 'GET', url: '/api/auth/social/:provider/callback', summary: 'The provider\u2019s redirect back: signs in, links, or hands over to the second factor', tags,
      auth: { mode: 'public', reason: 'the browser returns from the provider; the flow cookie and the code are the credential' },
      permission: 'none', rateLimit: 'login',
      audit: { action: 'auth.login', or: ['auth.social_failed', 'auth.social_account_created', 'auth.social_identity_linked'] },
      status: 302, schema: { params: providerParams, query: callbackQuery, response: redirect },
      // not_found: the provider is not configured; sso_failed: the flow, state, PKCE, token or
      // address refused; conflict: an account has the address (sign in to it and link);
      // invalid_credentials: a sign-out everywhere raced it; sso_required: the address is under an
      // org's SSO enforcement (sign in through its identity provider).
      errors: ['not_found', 'sso_failed', 'conflict', 'invalid_credentials', 'sso_required'],
      handler: async ({ ctx, params, reply }) => {
        const cookies = (reply.request.cookies ?? {}) as Record<string, string | undefined>;
        // Each flow is tried once, whatever the outcome.
        reply.clearCookie(flowCookie, flowCookieOptions);
        const raw = reply.request.url;
        const outcome = await d.social.callback(ctx, params.provider, raw.includes('?') ? raw.slice(raw.indexOf('?') + 1) : '', cookies[flowCookie]);
        // A signed-in user linked their identity: the session they have goes on.
        if ('linked' in outcome) return { location: withParam(outcome.returnTo, 'social_linked', params.provider) };
        if (outcome.secondFactorNeeded) {
          // The SSO handover: a one-minute, single-use code the page redeems at POST /api/auth/sso/handover.
          const code = await d.social.mintHandover(outcome);
          return { location: withParam(outcome.returnTo, 'sso_handover', code) };
        }
        await finishSignInOn(reply, d, ctx, { userId: outcome.userId, method: 'social', epoch: outcome.sessionEpoch, social: { provider: outcome.provider } });
        return { location: outcome.returnTo };
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/me/social/:provider/link',
      summary: 'Link your identity at a social provider to your account: sign in there in this browser', tags,
      // A new way into the account: a fresh proof first, as for an SSO link.
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.social_link_started' },
      stepUp: true, status: 201,
      schema: {
        params: providerParams,
        body: z.strictObject({ returnTo: returnTo.meta({ description: 'A path on this origin to come back to (default /), with ?social_linked=<provider>' }) }).optional(),
        response: z.object({ location: z.string().meta({ description: 'Open it in this browser: the provider\u2019s sign-in page' }) }),
      },
      // not_found: the provider is not configured; sso_failed: its discovery document could not be read.
      errors: ['not_found', 'sso_failed'],
      example: () => ({}),
      handler: async ({ ctx, params, body, reply }) => {
        const started = await d.social.startLink(ctx, params.provider, body?.returnTo);
        reply.setCookie(flowCookie, started.flow, { ...flowCookieOptions, maxAge: FLOW_TTL_SECONDS });
        return { location: started.location };
      },
    }),
    defineRoute({
      method: 'GET', url: '/api/me/social', summary: 'The social identities linked to your account', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { response: linkedIdentities }, errors: [],
      handler: async ({ ctx }) => ({ identities: await d.identities.list(userActorOf(ctx).userId) }),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/me/social/:provider', summary: 'Unlink your identity at a social provider: it signs you in no more', tags,
      // Changes the ways into the account: a fresh proof first, as for linking.
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.social_identity_unlinked' },
      stepUp: true, status: 204, schema: { params: providerParams },
      // not_found: no identity at this provider is linked to the account.
      errors: ['not_found'],
      handler: ({ ctx, params }) => d.identities.unlink(ctx, params.provider),
    }),
  ];
}
