import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { uuid } from '../../http/schemas.js';
import type { AuditWriter } from '../audit/index.js';
import type { MfaService } from '../identity/index.js';
import { finishSignInOn, type CookieSettings, type SignInService } from '../sessions/index.js';
import { FLOW_TTL_SECONDS, withParam } from './flow-state.js';
import { samlFlowCookieName, type SamlSignIn } from './saml.js';
import type { SsoSignIn } from './sign-in.js';

const connectionParams = z.strictObject({ connectionId: uuid });

/**
 * SameSite=None (with Secure and the __Host- prefix): the IdP's answer is a form POST from its
 * own site, which carries no Lax cookie. The value is sealed and names one AuthnRequest, so
 * riding on it cross-site gains nothing. Without TLS (development) None is not allowed: Lax.
 */
function samlCookieOptions(secure: boolean) {
  return { path: '/', httpOnly: true, secure, sameSite: secure ? ('none' as const) : ('lax' as const) };
}

export function setSamlFlowCookie(reply: FastifyReply, secure: boolean, flow: string): void {
  reply.setCookie(samlFlowCookieName(secure), flow, { ...samlCookieOptions(secure), maxAge: FLOW_TTL_SECONDS });
}

/** SAML's public endpoints: the SP metadata an IdP imports, and the Assertion Consumer Service it posts to. */
export function samlAuthRoutes(d: { saml: SamlSignIn; sso: SsoSignIn; signIn: SignInService; cookie: CookieSettings; mfa: MfaService; audit: AuditWriter }): AnyRoute[] {
  const tags = ['sso'];
  const flowCookie = samlFlowCookieName(d.cookie.secure);
  return [
    defineRoute({
      method: 'GET', url: '/api/auth/sso/saml/:connectionId/metadata', summary: 'This service provider\u2019s SAML metadata for a connection (entity id, ACS URL, NameID format)', tags,
      auth: { mode: 'public', reason: 'the IdP\u2019s administrator (or the IdP itself) imports it; it holds no secret' },
      permission: 'none', rateLimit: 'probe', audit: { none: 'read of public metadata' },
      schema: { params: connectionParams, response: z.string().meta({ description: 'SAML 2.0 EntityDescriptor (application/samlmetadata+xml)' }) },
      errors: ['not_found'],
      handler: async ({ params, reply }) => {
        const xml = await d.saml.metadata(params.connectionId);
        return reply.code(200).type('application/samlmetadata+xml; charset=utf-8').header('cache-control', 'no-store').send(xml);
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/sso/saml/:connectionId/acs', summary: 'The SAML Assertion Consumer Service (HTTP-POST binding): signs in, hands over to the second factor, or records an admin\u2019s test run', tags,
      auth: { mode: 'public', reason: 'the identity provider posts the signed SAML response here from the user\u2019s browser' },
      permission: 'none', rateLimit: 'login', audit: { action: 'auth.login', or: ['auth.login_second_factor_pending', 'auth.sso_failed', 'sso.connection_tested'] },
      rawBody: true,
      crossSiteForm: 'the IdP\u2019s page posts the form from its own origin; the signed response and the SAML flow cookie (naming the request) are the credential',
      status: 302, schema: { params: connectionParams, body: z.string().optional(), response: z.object({ location: z.string() }) },
      // sso_failed: any check of the response refused; not_found: no such enabled SAML connection;
      // malformed_request, validation_failed, payload_too_large: not a SAML form post.
      errors: ['sso_failed', 'invalid_credentials', 'not_found', 'malformed_request', 'payload_too_large', 'sso_required'],
      handler: async ({ ctx, params, body, reply }) => {
        // Read as a form whatever the content type says (like every raw-body route): a body that
        // is not one has no SAMLResponse and is refused with 400.
        const cookies = (reply.request.cookies ?? {}) as Record<string, string | undefined>;
        // Each request is answered once, whatever the outcome.
        if (cookies[flowCookie]) reply.clearCookie(flowCookie, samlCookieOptions(d.cookie.secure));
        const form = new URLSearchParams(body ?? '');
        const outcome = await d.saml.acs(ctx, params.connectionId, form, cookies[flowCookie]);
        // An admin's test run: nobody signs in; the page reads the run (its id is no credential).
        if ('testId' in outcome) return { location: withParam(outcome.returnTo, 'sso_test', outcome.testId) };
        if (outcome.secondFactorNeeded) {
          const code = await d.sso.mintHandover(outcome);
          return { location: withParam(outcome.returnTo, 'sso_handover', code) };
        }
        await finishSignInOn(reply, d, ctx, { userId: outcome.userId, method: 'sso', epoch: outcome.sessionEpoch, sso: outcome.sso });
        return { location: outcome.returnTo };
      },
    }),
  ];
}
