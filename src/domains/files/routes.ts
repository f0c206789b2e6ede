import { Readable } from 'node:stream';
import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { projectParams, uuid } from '../../http/schemas.js';
import { fileList, fileView } from './responses.js';
import type { FileService } from './service.js';

const fileParams = z.strictObject({ orgId: uuid, projectId: uuid, fileId: uuid });

/**
 * `Content-Disposition: attachment` with the stored name: an ASCII fallback (anything else, and
 * quotes and backslashes, as `_`) and the exact name in RFC 5987 form for clients that read it.
 */
export function attachmentHeader(name: string): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\%;]/g, '_');
  return `attachment; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)}`;
}

export function fileRoutes(files: FileService): AnyRoute[] {
  const tags = ['files'];
  const base = '/api/orgs/:orgId/projects/:projectId/files';
  return [
    defineRoute({
      method: 'GET', url: base, summary: 'List a project\u2019s files (newest first), with the plan\u2019s limits and the organization\u2019s usage', tags,
      auth: { mode: 'session' }, api: true, permission: 'files:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: projectParams, query: z.strictObject({ limit: z.coerce.number().int().min(1).max(200).default(50) }), response: fileList },
      errors: [],
      handler: ({ ctx, params, query }) => files.list(ctx, params.projectId, query.limit),
    }),
    defineRoute({
      method: 'POST', url: base,
      summary: 'Upload a file (multipart/form-data, one file part): kept only once its size, name, content, any zip inside and the malware scan pass',
      tags, auth: { mode: 'session' }, api: true, permission: 'files:write', rateLimit: 'authenticated', audit: { action: 'file.uploaded' },
      upload: true, status: 201,
      schema: { params: projectParams, response: fileView },
      // 413 over the file limit or the quota; 415 a name, content or archive refused; 422 malware;
      // 503 no scanner verdict (Retry-After); 400 a body that is not one file part.
      // 429 too many uploads of the org at once; 503 too many in the process.
      errors: ['payload_too_large', 'quota_exceeded', 'unsupported_media_type', 'malware_detected', 'scanner_unavailable', 'validation_failed', 'malformed_request', 'rate_limited', 'unavailable'],
      handler: ({ ctx, params, upload }) => files.upload(ctx, params.projectId, upload as NonNullable<typeof upload>),
    }),
    defineRoute({
      method: 'GET', url: `${base}/:fileId/content`, summary: 'Download a file: always as an attachment, with its stored content type and nosniff', tags,
      auth: { mode: 'session' }, api: true, permission: 'files:read', rateLimit: 'authenticated', audit: { action: 'file.downloaded' },
      schema: { params: fileParams, response: z.string().meta({ description: 'The file\u2019s bytes, with the content type it was stored with' }) },
      errors: [],
      handler: async ({ ctx, params, reply }) => {
        const { file, body } = await files.download(ctx, params.projectId, params.fileId);
        return reply.code(200).type(file.contentType)
          .header('content-disposition', attachmentHeader(file.name))
          .header('content-length', String(file.sizeBytes))
          .header('x-content-type-options', 'nosniff')
          // Even opened directly, an HTML or SVG file runs nothing and reaches nothing.
          .header('content-security-policy', "default-src 'none'; sandbox")
          .header('cache-control', 'private, no-store')
          .send(Readable.from(body));
      },
    }),
    defineRoute({
      method: 'PUT', url: '/api/orgs/:orgId/projects/:projectId/file-types',
      summary: 'Set the file types a project accepts (extensions; null: any type not refused as executable or script)', tags,
      auth: { mode: 'session' }, api: true, permission: 'projects:update', rateLimit: 'authenticated', audit: { action: 'project.updated' },
      schema: {
        params: projectParams,
        body: z.strictObject({ extensions: z.array(z.string().regex(/^[A-Za-z0-9]{1,16}$/, 'an extension without its dot: letters and digits')).max(100).nullable() }),
        response: z.object({ extensions: z.array(z.string()).nullable() }),
      },
      errors: [],
      example: () => ({ extensions: ['pdf', 'csv', 'png', 'txt'] }),
      handler: ({ ctx, params, body }) => files.setExtensions(ctx, params.projectId, body.extensions),
    }),
    defineRoute({
      method: 'DELETE', url: `${base}/:fileId`, summary: 'Delete a file (its bytes and its key)', tags,
      auth: { mode: 'session' }, api: true, permission: 'files:write', rateLimit: 'authenticated', audit: { action: 'file.deleted' },
      status: 204, schema: { params: fileParams }, errors: [],
      handler: async ({ ctx, params }) => files.remove(ctx, params.projectId, params.fileId),
    }),
  ];
}
