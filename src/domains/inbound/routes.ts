import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams, userText, uuid } from '../../http/schemas.js';
import { DeliveryRejected } from './providers.js';
import { receipt, sourceList, sourceView } from './responses.js';
import type { InboundService } from './service.js';

/** A Standard Webhooks secret that passes the shape check (the matrix's example; it signs nothing real). */
const EXAMPLE_SECRET = `whsec_${Buffer.alloc(32, 0x5a).toString('base64')}`;

export function inboundRoutes(inbound: InboundService): AnyRoute[] {
  const tags = ['inbound-webhooks'];
  const names = inbound.providerNames();
  const createBody = z
    .strictObject({
      name: userText(100),
      provider: z.string().refine((p) => names.includes(p), `one of ${names.join(', ')}`),
      secret: z.string().trim().min(1).max(300),
    })
    .superRefine((b, issues) => {
      // The message names the expected shape, never the value.
      if (names.includes(b.provider) && !inbound.acceptsSecret(b.provider, b.secret)) {
        issues.addIssue({ code: 'custom', path: ['secret'], message: b.provider === 'standard'
          ? 'a Standard Webhooks secret is whsec_ followed by the base64 of 24 to 64 bytes'
          : `not a ${b.provider} signing secret (whsec_ followed by at least 32 letters and digits)` });
      }
    });

  return [
    defineRoute({
      // Not under /api/orgs/:orgId: the caller is a provider, not a member acting in the org; the
      // org in the path only selects which tenant's sources the lookup may see.
      method: 'POST', url: '/api/inbound/:org/:sourceId', summary: 'Receive a provider-signed event (Standard Webhooks or Stripe)', tags,
      auth: { mode: 'public', reason: 'called by webhook providers, which hold no session: each delivery is signed with the source secret, and the signature and its timestamp are verified before the body is parsed' },
      permission: 'none', rateLimit: 'inbound', rawBody: true,
      audit: { none: 'the service appends inbound.received when an event is first applied; a refused or duplicate delivery changes nothing' },
      // Anything malformed in the path is one more unknown source: the same answer as a bad signature.
      schema: { params: z.strictObject({ org: z.string(), sourceId: z.string() }), body: z.string().optional(), response: receipt },
      // token_invalid: the one answer to an unknown source, a bad signature or a stale timestamp.
      errors: ['token_invalid'],
      handler: async ({ ctx, params, body, reply }) => {
        try {
          return await inbound.receive(ctx, params.org, params.sourceId, { headers: reply.request.headers, body: body ?? '' });
        } catch (err) {
          // The reason helps an operator (a skewed clock, a rotated secret); the caller never sees it.
          if (err instanceof DeliveryRejected) reply.log.info({ inbound: { reason: err.reason } }, 'inbound delivery refused');
          throw err;
        }
      },
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/inbound-sources', summary: 'List the organization\u2019s inbound webhook sources (never their secrets)', tags,
      auth: { mode: 'session' }, permission: 'webhooks:manage', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: sourceList }, errors: [],
      handler: async ({ ctx }) => ({ sources: await inbound.list(ctx) }),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/inbound-sources', summary: 'Add an inbound webhook source with the secret its provider signs with', tags,
      auth: { mode: 'session' }, permission: 'webhooks:manage', rateLimit: 'authenticated', audit: { action: 'inbound.source_created' },
      // Stores a credential that lets whoever holds it inject events into the org.
      stepUp: true, status: 201,
      schema: { params: orgParams, body: createBody, response: sourceView },
      // conflict: the org already has MAX_SOURCES_PER_ORG sources.
      errors: ['conflict'],
      example: () => ({ name: 'Billing events', provider: 'standard', secret: EXAMPLE_SECRET }),
      handler: ({ ctx, body }) => inbound.create(ctx, body),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId/inbound-sources/:sourceId', summary: 'Delete an inbound webhook source (its secret is destroyed)', tags,
      auth: { mode: 'session' }, permission: 'webhooks:manage', rateLimit: 'authenticated', audit: { action: 'inbound.source_deleted' },
      status: 204, schema: { params: z.strictObject({ orgId: uuid, sourceId: uuid }) }, errors: [],
      handler: ({ ctx, params }) => inbound.remove(ctx, params.sourceId),
    }),
  ];
}
