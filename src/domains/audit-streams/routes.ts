import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams, userText, uuid } from '../../http/schemas.js';
import { createdStream, rotatedStreamSecret, streamList, streamView, testResult } from './responses.js';
import type { AuditStreamService } from './service.js';

const url = z.string().max(2048);
const host = z.string().trim().min(1).max(253);
const port = z.number().int().min(1).max(65535);
const from = z.enum(['now', 'start']).optional()
  .meta({ description: 'now (default): events from this one on; start: the whole trail first, then new events' });
// A header value as HTTP allows it: visible ASCII and inner spaces, no line breaks (header injection).
const authorization = z.string().min(1).max(1024).regex(/^[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?$/, 'visible ASCII characters and spaces, no line breaks')
  .meta({ description: 'https: the Authorization header the receiver expects (`Splunk <token>`, `Bearer <token>`, `ApiKey <key>`); write-only, stored sealed' });
const common = { description: userText(200, { allowEmpty: true }).optional(), enabled: z.boolean().optional(), from };
const newStream = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('https'), url, authorization: authorization.optional(), ...common }),
  z.strictObject({ kind: z.literal('syslog'), host, port, tls: z.boolean().optional().meta({ description: 'Default true; production refuses false' }), ...common }),
]);
const streamParams = z.strictObject({ orgId: uuid, streamId: uuid });

/**
 * Streams carry the whole trail off the platform, so everything that chooses where it goes or
 * who can read it (create, a new destination, delete, a new secret) asks for a fresh step-up,
 * as webhooks do for their secrets; deleting one too, since it is how a stream is silenced.
 */
export function auditStreamRoutes(streams: AuditStreamService): AnyRoute[] {
  const tags = ['audit'];
  const base = '/api/orgs/:orgId/audit/streams';
  const shared = { tags, auth: { mode: 'session' }, permission: 'audit:stream', rateLimit: 'authenticated' } as const;
  return [
    defineRoute({
      ...shared, method: 'POST', url: base,
      summary: 'Stream the audit trail to a SIEM: an HTTPS receiver (signed NDJSON batches; its secret is in this answer only) or syslog over TCP/TLS',
      audit: { action: 'audit.stream_created' }, stepUp: true, status: 201,
      schema: { params: orgParams, body: newStream, response: createdStream },
      // conflict: the org already has MAX_STREAMS streams.
      errors: ['conflict'],
      example: () => ({ kind: 'https', url: 'https://siem.example.com/palisade' }),
      handler: ({ ctx, body }) => streams.create(ctx, body),
    }),
    defineRoute({
      ...shared, method: 'GET', url: base, summary: 'List audit streams with their delivery status and lag', audit: { none: 'read' },
      schema: { params: orgParams, response: streamList }, errors: [],
      handler: async ({ ctx }) => ({ streams: await streams.list(ctx) }),
    }),
    defineRoute({
      ...shared, method: 'GET', url: `${base}/:streamId`, summary: 'Read an audit stream and its status', audit: { none: 'read' },
      schema: { params: streamParams, response: streamView }, errors: [],
      handler: ({ ctx, params }) => streams.get(ctx, params.streamId),
    }),
    defineRoute({
      ...shared, method: 'PATCH', url: `${base}/:streamId`, summary: 'Change an audit stream (destination, description, enabled)',
      audit: { action: 'audit.stream_updated' }, stepUp: true,
      schema: {
        params: streamParams,
        body: z.strictObject({
          url: url.optional(), host: host.optional(), port: port.optional(), tls: z.boolean().optional(),
          authorization: authorization.nullable().optional().meta({ description: 'https: a new Authorization header; null removes it. A new url without one drops the old header' }),
          description: common.description, enabled: common.enabled,
        }),
        response: streamView,
      },
      errors: [],
      example: () => ({ enabled: false }),
      handler: ({ ctx, params, body }) => streams.update(ctx, params.streamId, body),
    }),
    defineRoute({
      ...shared, method: 'DELETE', url: `${base}/:streamId`, summary: 'Delete an audit stream (the trail itself stays)',
      audit: { action: 'audit.stream_deleted' }, stepUp: true, status: 204,
      schema: { params: streamParams }, errors: [],
      handler: async ({ ctx, params }) => streams.remove(ctx, params.streamId),
    }),
    defineRoute({
      ...shared, method: 'POST', url: `${base}/:streamId/rotate-secret`,
      summary: 'Issue a new signing secret for an HTTPS stream (shown once); the previous one keeps signing for 24 hours',
      audit: { action: 'audit.stream_secret_rotated' }, stepUp: true,
      schema: { params: streamParams, response: rotatedStreamSecret },
      // conflict: a syslog stream has no secret.
      errors: ['conflict'],
      handler: ({ ctx, params }) => streams.rotateSecret(ctx, params.streamId),
    }),
    defineRoute({
      ...shared, method: 'POST', url: `${base}/:streamId/test`, rateLimit: 'outbound-test',
      summary: 'Send a test event (seq 0, action audit.stream_test) to the destination now and report what came back',
      audit: { action: 'audit.stream_tested' },
      schema: { params: streamParams, response: testResult }, errors: [],
      handler: ({ ctx, params }) => streams.sendTest(ctx, params.streamId),
    }),
  ];
}
