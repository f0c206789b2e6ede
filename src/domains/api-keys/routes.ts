import { z } from 'zod';
import { API_PREFIX, defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams, userText, uuid } from '../../http/schemas.js';
import { API_KEY_PERMISSIONS } from '../../kernel/permissions.js';
import { apiKeyList, createdApiKey, keyIdentity, keyKind, keyPermission } from './responses.js';
import type { ApiKeyService } from './service.js';

const newKey = z.strictObject({
  name: userText(100),
  kind: keyKind,
  permissions: z.array(keyPermission).min(1).max(API_KEY_PERMISSIONS.length),
  projectId: uuid.nullish(),
  expiresAt: z.iso.datetime({ offset: true }).transform((s) => new Date(s)).nullish(),
});

export function apiKeyRoutes(keys: ApiKeyService): AnyRoute[] {
  const tags = ['api-keys'];
  return [
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/api-keys', summary: 'Create an API key (the token is shown in this answer only)', tags,
      auth: { mode: 'session' }, permission: 'keys:own', rateLimit: 'authenticated', audit: { action: 'api_key.created' },
      stepUp: true, status: 201, schema: { params: orgParams, body: newKey, response: createdApiKey },
      // conflict: the org's or the member's cap of active keys; privilege_escalation: a permission the caller lacks.
      errors: ['conflict', 'privilege_escalation'],
      example: () => ({ name: 'matrix key', kind: 'secret', permissions: ['projects:read'] }),
      handler: ({ ctx, body }) => keys.create(ctx, body),
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/api-keys', summary: 'List API keys (every key with keys:manage, else your own)', tags,
      auth: { mode: 'session' }, permission: 'keys:own', rateLimit: 'authenticated', audit: { none: 'read' }, ownerRecovery: true,
      schema: { params: orgParams, response: apiKeyList },
      // An owner outside the admin IP allowlist keeps the route with a fresh step-up (ownerRecovery).
      errors: ['step_up_required'],
      handler: async ({ ctx }) => ({ keys: await keys.list(ctx) }),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId/api-keys/:keyId', summary: 'Revoke an API key (another member\u2019s needs keys:manage)', tags,
      auth: { mode: 'session' }, permission: 'keys:own', rateLimit: 'authenticated', audit: { action: 'api_key.revoked' }, ownerRecovery: true,
      status: 204, schema: { params: z.strictObject({ orgId: uuid, keyId: uuid }) },
      // conflict: already revoked; privilege_escalation: the creator is an owner, or holds more than
      // the caller (assertCanActOnCredentials); step_up_required: an owner outside the allowlist.
      errors: ['conflict', 'privilege_escalation', 'step_up_required'],
      handler: async ({ ctx, params }) => keys.revoke(ctx, params.keyId),
    }),
    defineRoute({
      method: 'GET', url: `${API_PREFIX}/orgs/:orgId/key`, summary: 'The calling key: its effective permissions and project (keys only)', tags,
      auth: { mode: 'key' }, permission: 'org:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: keyIdentity }, errors: [],
      handler: async ({ ctx }) => keys.whoami(ctx),
    }),
  ];
}
