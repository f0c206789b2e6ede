import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams, userText, uuid } from '../../http/schemas.js';
import { credentialList, credentialView, rotationPage, usePage } from './responses.js';
import { CREDENTIAL_KINDS, MAX_SECRET_BYTES, MAX_TEXT, NAME_PATTERN, NAME_RULE, secretProblem } from './rules.js';
import type { CredentialService } from './service.js';

/**
 * The value: bounded before anything else looks at it, and a refusal names the rule, never the
 * value (zod's messages quote no input). Not trimmed: a credential is sent as given.
 */
const secret = z
  .string()
  .max(MAX_SECRET_BYTES)
  .superRefine((s, issues) => {
    const problem = secretProblem(s);
    if (problem) issues.addIssue({ code: 'custom', message: problem });
  })
  .meta({ description: `The credential\u2019s value, write-only (at most ${MAX_SECRET_BYTES} bytes); no answer ever contains it` });

const name = z.string().max(64).regex(NAME_PATTERN, NAME_RULE);
const credentialParams = z.strictObject({ orgId: uuid, credentialId: uuid });
const pageQuery = z.strictObject({
  before: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER).optional(),
  limit: z.coerce.number().int().min(1).max(100).default(20),
});

/** An example name the authorization matrix can send many times (names are unique per org). */
let examples = 0;

export function credentialRoutes(credentials: CredentialService): AnyRoute[] {
  const tags = ['integration-credentials'];
  const base = '/api/orgs/:orgId/integrations/credentials';
  const reader = { tags, auth: { mode: 'session' }, permission: 'credentials:read', rateLimit: 'authenticated', audit: { none: 'read' } } as const;
  const writer = { tags, auth: { mode: 'session' }, permission: 'credentials:manage', rateLimit: 'authenticated' } as const;
  return [
    defineRoute({
      ...reader, method: 'GET', url: base, summary: 'List the organization\u2019s integration credentials (metadata only, never a value)',
      schema: { params: orgParams, response: credentialList }, errors: [],
      handler: async ({ ctx }) => ({ credentials: await credentials.list(ctx) }),
    }),
    defineRoute({
      ...writer, method: 'POST', url: base, summary: 'Add an integration credential (write-only: its value is never shown again)',
      audit: { action: 'credential.created' },
      // Stores a credential to another company's systems, as adding a webhook or SSO secret does.
      stepUp: true, status: 201,
      schema: {
        params: orgParams,
        body: z.strictObject({ name, kind: z.enum(CREDENTIAL_KINDS), description: userText(MAX_TEXT, { allowEmpty: true }).optional(), secret }),
        response: credentialView,
      },
      // conflict: the name is taken, or the org holds MAX_CREDENTIALS_PER_ORG credentials.
      errors: ['conflict'],
      example: () => ({ name: `psa-example-${(examples++).toString(36)}`, kind: 'api_token', description: 'PSA sync', secret: 'example-token-value' }),
      handler: ({ ctx, body }) => credentials.create(ctx, body),
    }),
    defineRoute({
      ...reader, method: 'GET', url: `${base}/:credentialId`, summary: 'Read an integration credential\u2019s metadata (never its value)',
      schema: { params: credentialParams, response: credentialView }, errors: [],
      handler: ({ ctx, params }) => credentials.get(ctx, params.credentialId),
    }),
    defineRoute({
      ...writer, method: 'POST', url: `${base}/:credentialId/replace`, summary: 'Replace (rotate) an integration credential\u2019s value, saying why',
      audit: { action: 'credential.replaced' }, stepUp: true,
      schema: { params: credentialParams, body: z.strictObject({ secret, reason: userText(MAX_TEXT) }), response: credentialView },
      errors: [],
      example: () => ({ secret: 'example-rotated-value', reason: 'scheduled rotation' }),
      handler: ({ ctx, params, body }) => credentials.replace(ctx, params.credentialId, body),
    }),
    defineRoute({
      // No step-up, like deleting a webhook endpoint or an inbound source: it discloses nothing and stores nothing.
      ...writer, method: 'DELETE', url: `${base}/:credentialId`, summary: 'Delete an integration credential (its value is destroyed; host code asking for it gets not_found)',
      audit: { action: 'credential.deleted' }, status: 204, schema: { params: credentialParams }, errors: [],
      handler: ({ ctx, params }) => credentials.remove(ctx, params.credentialId),
    }),
    defineRoute({
      ...reader, method: 'GET', url: `${base}/:credentialId/rotations`, summary: 'The credential\u2019s rotation history: when, by whom, why (newest first)',
      schema: { params: credentialParams, query: pageQuery, response: rotationPage }, errors: [],
      handler: ({ ctx, params, query }) => credentials.rotations(ctx, params.credentialId, query),
    }),
    defineRoute({
      ...reader, method: 'GET', url: `${base}/:credentialId/uses`, summary: 'The credential\u2019s use log: who used it, when, and what came of it (newest first)',
      schema: { params: credentialParams, query: pageQuery, response: usePage }, errors: [],
      handler: ({ ctx, params, query }) => credentials.uses(ctx, params.credentialId, query),
    }),
  ];
}
