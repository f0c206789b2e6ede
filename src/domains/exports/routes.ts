import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams, uuid } from '../../http/schemas.js';
import { exportLinkView, exportList, exportView, publishedKeys } from './responses.js';
import type { ExportService } from './service.js';
import type { SigningKeys } from './signing.js';

const exportParams = z.strictObject({ orgId: uuid, exportId: uuid });

export function exportRoutes(d: { exports: ExportService; signing: SigningKeys }): AnyRoute[] {
  const tags = ['exports'];
  const base = '/api/orgs/:orgId/exports';
  // Owners only, and also while the org awaits its shredding: exporting before it is the point.
  const owner = { tags, auth: { mode: 'session' }, permission: 'org:export', rateLimit: 'authenticated', whileDeleting: true } as const;
  return [
    defineRoute({
      ...owner, method: 'POST', url: base, summary: 'Export every row the organization owns into a signed, encrypted archive (written in the background)',
      // Hands out everything the org holds: the same fresh proof of identity as deleting it.
      stepUp: true, status: 202, audit: { action: 'org.export_requested' },
      schema: { params: orgParams, response: exportView },
      errors: ['conflict'], // an export of the org is still being written
      handler: ({ ctx }) => d.exports.request(ctx),
    }),
    defineRoute({
      ...owner, method: 'GET', url: base, summary: 'The organization\u2019s exports (newest first) with their progress',
      audit: { none: 'read' }, schema: { params: orgParams, response: exportList }, errors: [],
      handler: async ({ ctx }) => ({ exports: await d.exports.list(ctx) }),
    }),
    defineRoute({
      ...owner, method: 'GET', url: `${base}/:exportId`, summary: 'One export\u2019s progress (rows done of the estimated total) and state',
      audit: { none: 'read' }, schema: { params: exportParams, response: exportView }, errors: [],
      handler: ({ ctx, params }) => d.exports.get(ctx, params.exportId),
    }),
    defineRoute({
      ...owner, method: 'POST', url: `${base}/:exportId/link`, summary: 'A download link for a finished export: works once, for a few minutes',
      stepUp: true, status: 201, audit: { action: 'org.export_link_created' },
      schema: { params: exportParams, response: exportLinkView },
      errors: ['conflict'], // the export is not done (queued, running, failed or expired)
      handler: ({ ctx, params }) => d.exports.link(ctx, params.exportId),
    }),
    defineRoute({
      method: 'GET', url: '/api/export-downloads/:org/:exportId', summary: 'Download an export (a POSIX tar) with a link\u2019s token: once, before the link expires',
      tags, auth: { mode: 'public', reason: 'the link\u2019s single-use token is the credential (a browser download or curl carries no session); only its hash is stored' },
      permission: 'none', rateLimit: 'probe', audit: { action: 'org.export_downloaded' },
      schema: {
        params: z.strictObject({ org: uuid, exportId: uuid }),
        query: z.strictObject({ token: z.string().max(100) }),
        response: z.string().meta({ description: 'The archive (application/x-tar): tables/<table>/<n>.ndjson, manifest.json, manifest.sig' }),
      },
      errors: ['token_invalid'], // unknown, spent or expired link, or an export no longer downloadable
      handler: async ({ ctx, params, query, reply }) => {
        const { stream, fileName } = await d.exports.download(ctx, params.org, params.exportId, query.token);
        return reply.code(200).type('application/x-tar')
          .header('content-disposition', `attachment; filename="${fileName}"`)
          .header('x-content-type-options', 'nosniff')
          .header('cache-control', 'no-store')
          .send(stream);
      },
    }),
    defineRoute({
      method: 'GET', url: '/.well-known/palisade-export-keys', summary: 'The public keys that sign export manifests (JWK set)',
      tags, auth: { mode: 'public', reason: 'public keys: whoever holds an archive verifies its manifest with them' },
      permission: 'none', rateLimit: 'probe', audit: { none: 'read of public keys' },
      schema: { response: publishedKeys }, errors: [],
      handler: async () => ({ keys: await d.signing.published() }),
    }),
  ];
}
