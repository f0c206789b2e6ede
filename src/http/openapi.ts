import { z } from 'zod';
import { AUDIT_ACTIONS } from '../kernel/audit-actions.js';
import { ERROR_CODES, type ErrorCode } from '../kernel/errors.js';
import { jsonSchemaOf, problemCodesOf, successStatus } from './contract.js';
import { statusOf } from './problem.js';
import { orgScoped, projectScoped, type AnyRoute } from './route.js';

function jsonSchema(schema: z.ZodType | undefined, io: 'input' | 'output' = 'input'): Record<string, unknown> | undefined {
  if (!schema) return undefined;
  try {
    return jsonSchemaOf(schema, io);
  } catch {
    return { type: 'object' };
  }
}

/** The problem answers of a route, one per HTTP status, each naming the codes it can carry. */
function problemResponses(route: AnyRoute): Record<string, unknown> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of problemCodesOf(route)) {
    const status = statusOf(code);
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, unknown> = {};
  for (const [status, codes] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = {
      description: codes.join(', '),
      content: {
        'application/problem+json': {
          schema: { allOf: [{ $ref: '#/components/schemas/Problem' }, { type: 'object', properties: { code: { enum: codes } } }] },
        },
      },
    };
  }
  return out;
}

function successResponse(route: AnyRoute): Record<string, unknown> {
  const status = String(successStatus(route));
  if (status === '204') return { [status]: { description: 'Done; no body' } };
  if (status === '302') {
    return { [status]: { description: 'Redirect: the browser goes on to the Location', headers: { Location: { required: true, schema: { type: 'string', format: 'uri-reference' } } } } };
  }
  const schema = jsonSchema(route.schema.response, 'output');
  return { [status]: schema ? { description: 'Success', content: { 'application/json': { schema } } } : { description: 'Success' } };
}

/** OpenAPI 3.1 of the live route table, each operation carrying its auth mode, permission, rate-limit policy and audit action. */
export function buildOpenApi(routes: readonly AnyRoute[], info: { version: string; serverUrl: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const path = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
    const params = jsonSchema(r.schema.params) as { properties?: Record<string, unknown> } | undefined;
    const query = jsonSchema(r.schema.query) as { properties?: Record<string, unknown>; required?: string[] } | undefined;
    const parameters = [
      ...Object.entries(params?.properties ?? {}).map(([name, schema]) => ({ name, in: 'path', required: true, schema })),
      ...Object.entries(query?.properties ?? {}).map(([name, schema]) => ({
        name, in: 'query', required: query?.required?.includes(name) ?? false, schema,
      })),
    ];
    const body = jsonSchema(r.schema.body);
    const op: Record<string, unknown> = {
      summary: r.summary,
      tags: r.tags,
      operationId: `${r.method.toLowerCase()}${path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
      security: r.auth.mode === 'public' ? [] : r.auth.mode === 'key' ? [{ apiKey: [] }] : [{ sessionCookie: [] }],
      'x-palisade-auth': r.auth.mode,
      'x-palisade-permission': r.permission,
      'x-palisade-rate-limit': r.rateLimit,
      'x-palisade-audit': 'action' in r.audit ? r.audit.action : null,
      'x-palisade-org-scoped': orgScoped(r),
      'x-palisade-project-scoped': projectScoped(r),
      ...(r.ownerRecovery ? { 'x-palisade-owner-recovery': true } : {}),
      parameters,
      responses: { ...successResponse(r), ...problemResponses(r) },
    };
    if (r.auth.mode === 'public') op.description = `Public: ${r.auth.reason}`;
    else op.description = `Requires ${r.permission === 'self' ? 'a signed-in user' : `permission \`${r.permission}\``}.`;
    if (r.ownerRecovery) op.description += ' Owners keep it from outside the admin IP allowlist, with a fresh step-up.';
    if (body) op.requestBody = { required: true, content: { 'application/json': { schema: body } } };
    if (r.upload) {
      op.requestBody = {
        required: true,
        description: 'One file part named `file`, with its file name (nothing else in the body)',
        content: { 'multipart/form-data': { schema: { type: 'object', required: ['file'], properties: { file: { type: 'string', format: 'binary' } } } } },
      };
    }
    (paths[path] ??= {})[r.method.toLowerCase()] = op;
  }
  return {
    openapi: '3.1.0',
    info: { title: 'Palisade API', version: info.version, description: 'Security core of a multi-tenant SaaS.' },
    servers: [{ url: info.serverUrl }],
    paths,
    // The closed catalogue: what `x-palisade-audit` and the audit trail's `action` can be, and
    // which of them are webhook event types.
    'x-palisade-audit-actions': AUDIT_ACTIONS,
    components: {
      securitySchemes: {
        sessionCookie: { type: 'apiKey', in: 'cookie', name: '__Host-palisade_session' },
        apiKey: { type: 'http', scheme: 'bearer', bearerFormat: 'pal_sk_… or pal_pk_… (43 characters, CRC32 checksum)' },
      },
      schemas: {
        Problem: {
          type: 'object',
          required: ['type', 'title', 'status', 'code', 'requestId'],
          properties: {
            type: { type: 'string' }, title: { type: 'string' }, status: { type: 'integer' }, code: { type: 'string', enum: [...ERROR_CODES] },
            detail: { type: 'string' }, requestId: { type: 'string' },
            errors: { type: 'array', items: { type: 'object', properties: { path: { type: 'string' }, message: { type: 'string' } } } },
            ssoStart: { type: 'string', description: 'sso_required: the URL that starts the sign-in at the organization\u2019s identity provider' },
          },
        },
      },
    },
  };
}
