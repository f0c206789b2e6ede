import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';
import { signInPolicy } from './policy.js';

/** A claimed email domain and the DNS record that proves it. */
export const domainView = z.object({
  id: uuid,
  domain: z.string().meta({ description: 'Lower case; IDNA (punycode) for non-ASCII names' }),
  status: z.enum(['pending', 'verified']),
  verification: z.object({
    type: z.literal('TXT'),
    name: z.string().meta({ description: 'The record to publish: _palisade-verification.<domain>' }),
    value: z.string().meta({ description: 'Its value, exactly' }),
  }),
  createdBy: uuid,
  createdAt: timestamp,
  verifiedAt: timestamp.nullable(),
});
export type DomainView = z.infer<typeof domainView>;

export const domainList = z.object({ domains: z.array(domainView) });

/** An SSO connection as the API shows it: never its client secret (stored sealed). */
export const connectionView = z.object({
  id: uuid,
  kind: z.enum(['oidc', 'saml']),
  name: z.string(),
  enabled: z.boolean(),
  signIn: signInPolicy,
  oidc: z
    .object({
      issuer: z.string(),
      clientId: z.string(),
      scopes: z.array(z.string()),
      allowedTenants: z.array(z.string()).nullable()
        .meta({ description: 'Multi-tenant Entra ID: the tenant ids whose users may sign in; null for a one-tenant issuer' }),
      clientSecretSet: z.boolean(),
      redirectUri: z.string().meta({ description: 'The redirect URI to register at the identity provider' }),
    })
    .nullable(),
  saml: z
    .object({
      idpEntityId: z.string(),
      ssoUrl: z.string(),
      certificates: z.array(z.string()).meta({ description: 'The IdP\u2019s signing certificates (PEM, public); any of them may sign' }),
      allowIdpInitiated: z.boolean(),
      requireSignedResponse: z.boolean(),
      spEntityId: z.string().meta({ description: 'This service provider\u2019s entity id, to register at the IdP' }),
      acsUrl: z.string().meta({ description: 'The Assertion Consumer Service URL (HTTP-POST binding) to register at the IdP' }),
      metadataUrl: z.string().meta({ description: 'The SP metadata, which many IdPs import directly' }),
    })
    .nullable(),
  createdBy: uuid,
  createdAt: timestamp,
  updatedAt: timestamp,
});
export type ConnectionView = z.infer<typeof connectionView>;

export const connectionList = z.object({ connections: z.array(connectionView) });

/** A "test connection" run: what the IdP asserted, and what a real sign-in would do with it. */
export const ssoTestView = z.object({
  id: uuid,
  connectionId: uuid,
  status: z.enum(['pending', 'succeeded', 'failed']).meta({ description: 'pending until the browser returns from the identity provider' }),
  createdAt: timestamp,
  finishedAt: timestamp.nullable(),
  reason: z.string().nullable().meta({ description: 'failed: why (state, token, issuer, …)' }),
  claims: z
    .object({
      issuer: z.string(),
      subject: z.string(),
      email: z.string().nullable(),
      emailVerified: z.boolean(),
      name: z.string().nullable(),
      groups: z.array(z.string()),
      attributes: z.record(z.string(), z.array(z.string())).nullable()
        .meta({ description: 'SAML: every attribute of the assertion (names and string values, bounded), to map claims; OIDC: null' }),
    })
    .nullable(),
  signIn: z
    .object({
      outcome: z.enum(['signs_in', 'links_account', 'creates_account', 'refused']),
      userId: uuid.nullable().meta({ description: 'The account it reaches, when one exists' }),
      role: z.string().nullable().meta({ description: 'The role the group mapping (or the JIT role of a new member) gives' }),
      detail: z.string(),
    })
    .nullable(),
});
export type SsoTestView = z.infer<typeof ssoTestView>;

export const ssoTestStarted = z.object({
  testId: uuid,
  location: z.string().meta({ description: 'Open it in this browser: the identity provider\u2019s sign-in page' }),
});

export const ssoLinkStarted = z.object({
  location: z.string().meta({ description: 'Open it in this browser: the identity provider\u2019s sign-in page' }),
});

/** An org's SSO enforcement and the owners who keep a local way in. */
export const enforcementView = z.object({
  enforced: z.boolean(),
  enforcedSince: timestamp.nullable(),
  breakGlassOwners: z.array(z.object({ userId: uuid, email: z.string() })).meta({
    description: 'Owners who may still sign in with password and second factor (POST /api/auth/break-glass); at most three',
  }),
  domains: z.array(z.string()).meta({ description: 'The verified domains whose users enforcement covers' }),
});
export type EnforcementView = z.infer<typeof enforcementView>;

export const enforcementChanged = enforcementView.extend({
  sessionsEnded: z.number().int().meta({ description: 'Sessions of covered users that SSO did not open, ended by this change' }),
});
