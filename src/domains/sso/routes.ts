import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams, userText, uuid } from '../../http/schemas.js';
import type { ConnectionTests } from './connection-tests.js';
import type { ConnectionService } from './connections.js';
import type { DomainService } from './domains.js';
import { signInPolicy } from './policy.js';
import { connectionList, connectionView, domainList, domainView, enforcementChanged, enforcementView, ssoLinkStarted, ssoTestStarted, ssoTestView } from './responses.js';
import type { SsoEnforcement } from './enforcement.js';
import type { SsoSignIn } from './sign-in.js';
import type { SamlSignIn } from './saml.js';
import { setSamlFlowCookie } from './saml-routes.js';
import { FLOW_TTL_SECONDS, flowCookieName } from './flow-state.js';

const domainParams = z.strictObject({ orgId: uuid, domainId: uuid });
const connectionParams = z.strictObject({ orgId: uuid, connectionId: uuid });
const returnTo = z.string().max(512).regex(/^\/[\x21-\x7E]*$/, 'a path on this origin, printable ASCII').optional()
  .meta({ description: 'A path on this origin to come back to (default /), with ?sso_test=<id> or ?sso_linked=1' });
const testParams = z.strictObject({ orgId: uuid, connectionId: uuid, testId: uuid });

// RFC 6749 scope-token characters; openid is what makes it an OIDC sign-in.
const scopes = z
  .array(z.string().regex(/^[\x21\x23-\x5B\x5D-\x7E]{1,64}$/, 'a scope token (printable ASCII, no spaces, quotes or backslashes)'))
  .min(1).max(20)
  .refine((list) => list.includes('openid'), 'must include openid');
// Printable ASCII: identifiers the IdP issued, shown back to admins.
const clientId = z.string().trim().regex(/^[\x21-\x7E]{1,255}$/, 'printable ASCII without spaces, at most 255 characters');
const clientSecret = z.string().min(1).max(512).regex(/^[\x20-\x7E]+$/, 'printable ASCII');

// Entra ID tenant ids (GUIDs); a multi-tenant connection names the tenants that may sign in.
const allowedTenants = z
  .array(z.string().regex(/^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/, 'an Entra tenant id (a GUID)'))
  .min(1).max(50)
  .meta({ description: 'Multi-tenant Entra ID (issuer …/organizations/v2.0 or …/common/v2.0): the tenant ids whose users may sign in. Required for such an issuer; refused for any other' });

const newOidcConnection = z.strictObject({
  kind: z.literal('oidc'),
  name: userText(100),
  // Kept as typed: the discovery document's issuer must equal it character for character.
  issuer: z.string().max(2048).regex(/^[\x21-\x7E]+$/, 'a URL in printable ASCII').meta({ description: 'The issuer URL; its /.well-known/openid-configuration is read at once' }),
  clientId,
  clientSecret,
  scopes: scopes.optional(),
  allowedTenants: allowedTenants.optional(),
  jitRole: signInPolicy.shape.jitRole.optional(),
  trustIdpMfa: z.boolean().optional(),
  groupRoles: signInPolicy.shape.groupRoles.optional(),
});

// PEM or bare base64 DER; each is parsed as an X.509 certificate by the service.
const certificates = z.array(z.string().min(1).max(16_384)).min(1).max(4);

const newSamlConnection = z.strictObject({
  kind: z.literal('saml'),
  name: userText(100),
  // The service parses it (DOCTYPE and entities refused, 60 KiB cap): the body limit is the outer bound.
  metadataXml: z.string().min(1).max(60 * 1024).optional().meta({ description: 'The IdP\u2019s SAML 2.0 metadata XML; or give idpEntityId, ssoUrl and certificates' }),
  metadataUrl: z.string().max(2048).optional().meta({ description: 'Where the IdP publishes its metadata: read once, at creation, through the SSRF guard' }),
  idpEntityId: z.string().max(1024).optional(),
  ssoUrl: z.string().max(2048).optional().meta({ description: 'The IdP\u2019s SingleSignOnService URL (HTTP-Redirect binding)' }),
  certificates: certificates.optional(),
  allowIdpInitiated: z.boolean().optional().meta({ description: 'Accept IdP-initiated (unsolicited) responses; off by default' }),
  requireSignedResponse: z.boolean().optional().meta({ description: 'Require the Response to be signed as well as the Assertion (default true)' }),
  jitRole: signInPolicy.shape.jitRole.optional(),
  trustIdpMfa: z.boolean().optional(),
  groupRoles: signInPolicy.shape.groupRoles.optional(),
});

const newConnection = z.discriminatedUnion('kind', [newOidcConnection, newSamlConnection]);

const connectionChange = z
  .strictObject({
    name: userText(100).optional(), enabled: z.boolean().optional(), clientSecret: clientSecret.optional(), scopes: scopes.optional(), allowedTenants: allowedTenants.optional(),
    jitRole: signInPolicy.shape.jitRole.optional(), trustIdpMfa: z.boolean().optional(), groupRoles: signInPolicy.shape.groupRoles.optional(),
    certificates: certificates.optional(), allowIdpInitiated: z.boolean().optional(), requireSignedResponse: z.boolean().optional(),
  })
  .refine((c) => Object.values(c).some((v) => v !== undefined), 'change at least one field');

export function ssoRoutes(s: {
  domains: DomainService; connections: ConnectionService; sso: SsoSignIn; saml: SamlSignIn; tests: ConnectionTests; enforcement: SsoEnforcement; secureCookies: boolean;
}): AnyRoute[] {
  const tags = ['sso'];
  const flowCookie = flowCookieName(s.secureCookies);
  return [
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/domains', summary: 'List the organization\u2019s claimed email domains and their DNS records', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: domainList }, errors: ['step_up_required'],
      handler: async ({ ctx }) => ({ domains: await s.domains.list(ctx) }),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/domains', summary: 'Claim an email domain: answers the TXT record that proves it', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { action: 'domain.claimed' },
      status: 201, schema: { params: orgParams, body: z.strictObject({ domain: z.string().min(1).max(300) }), response: domainView },
      // conflict: already claimed here, verified by another org, or the org's cap reached.
      errors: ['conflict', 'step_up_required'],
      example: () => ({ domain: `m-${Math.random().toString(36).slice(2, 10)}.example` }),
      handler: ({ ctx, body }) => s.domains.claim(ctx, body.domain),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/domains/:domainId/verify', summary: 'Check the domain\u2019s TXT record and mark it verified', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { action: 'domain.verified' },
      // A verified domain sends its users' sign-ins to the org's SSO: a change worth a fresh proof.
      stepUp: true, schema: { params: domainParams, response: domainView },
      // domain_unverified: the record is not there (yet) or DNS did not answer; conflict: another org verified it first.
      errors: ['domain_unverified', 'conflict'],
      handler: ({ ctx, params }) => s.domains.verify(ctx, params.domainId),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId/domains/:domainId', summary: 'Remove a claimed or verified email domain', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { action: 'domain.removed' },
      // Removing a verified domain lets its users sign in without the org's SSO.
      stepUp: true, status: 204, schema: { params: domainParams }, errors: [],
      handler: ({ ctx, params }) => s.domains.remove(ctx, params.domainId),
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/sso/enforcement', summary: 'Whether the org\u2019s verified domains must sign in through SSO, and its break-glass owners', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: enforcementView }, errors: ['step_up_required'],
      handler: ({ ctx }) => s.enforcement.get(ctx),
    }),
    defineRoute({
      method: 'PUT', url: '/api/orgs/:orgId/sso/enforcement', summary: 'Require SSO for the users of the verified domains (owners only; ends their other sessions), or stop requiring it', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { action: 'sso.enforcement_enabled', or: ['sso.enforcement_disabled'] },
      // Decides how a whole company signs in, and signs people out.
      stepUp: true, schema: { params: orgParams, body: z.strictObject({ enforced: z.boolean() }), response: enforcementChanged },
      // conflict: already in that state, or no verified domain or enabled connection to enforce;
      // privilege_escalation: switching it on is an owner's act (owners:manage).
      errors: ['conflict', 'privilege_escalation'],
      example: () => ({ enforced: false }),
      handler: ({ ctx, body }) => s.enforcement.setEnforced(ctx, body.enforced),
    }),
    defineRoute({
      method: 'PUT', url: '/api/orgs/:orgId/sso/break-glass', summary: 'Name the owners (at most three) who may still sign in locally under SSO enforcement', tags,
      // An owner's choice: an admin must not decide who keeps a way around the org's SSO.
      auth: { mode: 'session' }, permission: 'owners:manage', rateLimit: 'authenticated', audit: { action: 'sso.break_glass_owners_changed' },
      stepUp: true, schema: { params: orgParams, body: z.strictObject({ owners: z.array(uuid).max(3) }), response: enforcementView },
      errors: ['validation_failed'],
      example: () => ({ owners: [] }),
      handler: ({ ctx, body }) => s.enforcement.setBreakGlassOwners(ctx, body.owners),
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/sso/connections', summary: 'List the organization\u2019s SSO connections (never their secrets)', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: connectionList }, errors: ['step_up_required'],
      handler: async ({ ctx }) => ({ connections: await s.connections.list(ctx) }),
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/sso/connections/:connectionId', summary: 'Read an SSO connection and the redirect URI to register', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: connectionParams, response: connectionView }, errors: ['step_up_required'],
      handler: ({ ctx, params }) => s.connections.get(ctx, params.connectionId),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/sso/connections', summary: 'Add an OIDC connection (its issuer is discovered first) or a SAML one (from IdP metadata); disabled until enabled', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { action: 'sso.connection_created' },
      // Stores a client secret, and decides who may sign in to the org.
      stepUp: true, status: 201, schema: { params: orgParams, body: newConnection, response: connectionView },
      // conflict: the org's cap reached.
      errors: ['conflict'],
      example: () => ({ kind: 'oidc', name: 'Entra ID', issuer: 'https://login.microsoftonline.com/<tenant id>/v2.0', clientId: 'palisade', clientSecret: 'from the IdP' }),
      handler: ({ ctx, body }) => (body.kind === 'saml' ? s.connections.createSaml(ctx, body) : s.connections.createOidc(ctx, body)),
    }),
    defineRoute({
      method: 'PATCH', url: '/api/orgs/:orgId/sso/connections/:connectionId', summary: 'Rename, enable or disable an SSO connection, rotate its client secret or SAML certificates', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { action: 'sso.connection_updated' },
      // conflict: disabling the last enabled connection of an org that enforces SSO.
      stepUp: true, schema: { params: connectionParams, body: connectionChange, response: connectionView }, errors: ['conflict'],
      example: () => ({ name: `Matrix IdP ${Math.random().toString(36).slice(2, 8)}` }),
      handler: ({ ctx, params, body }) => s.connections.update(ctx, params.connectionId, body),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/sso/connections/:connectionId/test',
      summary: 'Test a connection (enabled or not): sign in at its IdP in this browser and read the claims; no session, no account', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { action: 'sso.connection_test_started' },
      status: 201,
      schema: {
        params: connectionParams,
        body: z.strictObject({ returnTo }).optional(),
        response: ssoTestStarted,
      },
      // validation_failed: the IdP's discovery document could not be read.
      errors: ['validation_failed'],
      example: () => ({}),
      handler: async ({ ctx, params, body, reply }) => {
        // SAML: an AuthnRequest, its id and the run in the SAML flow cookie (the IdP posts back cross-site).
        if ((await s.connections.get(ctx, params.connectionId)).kind === 'saml') {
          const saml = await s.saml.startTest(ctx, params.connectionId, body?.returnTo);
          setSamlFlowCookie(reply, s.secureCookies, saml.flow);
          return { testId: saml.testId, location: saml.location };
        }
        const started = await s.sso.startTest(ctx, params.connectionId, body?.returnTo);
        // The same browser-bound flow cookie as a sign-in (Lax: the IdP's redirect back is a top-level GET).
        reply.setCookie(flowCookie, started.flow, { path: '/', httpOnly: true, secure: s.secureCookies, sameSite: 'lax', maxAge: FLOW_TTL_SECONDS });
        return { testId: started.testId, location: started.location };
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/sso/connections/:connectionId/link',
      summary: 'Link your identity at this connection\u2019s IdP to your account: sign in there in this browser', tags,
      // Every member may link their own identity; it is a new way into the account, so it needs a fresh proof.
      auth: { mode: 'session' }, permission: 'org:read', rateLimit: 'authenticated', audit: { action: 'sso.identity_link_started' },
      stepUp: true, status: 201,
      schema: { params: connectionParams, body: z.strictObject({ returnTo }).optional(), response: ssoLinkStarted },
      // validation_failed: the IdP's discovery document could not be read.
      errors: ['validation_failed'],
      example: () => ({}),
      handler: async ({ ctx, params, body, reply }) => {
        const started = await s.sso.startLink(ctx, params.connectionId, body?.returnTo);
        reply.setCookie(flowCookie, started.flow, { path: '/', httpOnly: true, secure: s.secureCookies, sameSite: 'lax', maxAge: FLOW_TTL_SECONDS });
        return { location: started.location };
      },
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/sso/connections/:connectionId/tests/:testId',
      summary: 'Read a test run of yours: what the IdP asserted and what a sign-in would do (ten minutes)', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: testParams, response: ssoTestView }, errors: [],
      handler: ({ ctx, params }) => s.tests.read(ctx, params.connectionId, params.testId),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId/sso/connections/:connectionId', summary: 'Delete an SSO connection (its secret is destroyed)', tags,
      auth: { mode: 'session' }, permission: 'sso:manage', rateLimit: 'authenticated', audit: { action: 'sso.connection_deleted' },
      // conflict: the last enabled connection of an org that enforces SSO.
      stepUp: true, status: 204, schema: { params: connectionParams }, errors: ['conflict'],
      handler: ({ ctx, params }) => s.connections.remove(ctx, params.connectionId),
    }),
  ];
}
