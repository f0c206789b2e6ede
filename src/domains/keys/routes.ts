import { defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams } from '../../http/schemas.js';
import { requireOrg } from '../../db/binding.js';
import { dataKeyState } from './responses.js';
import type { DataKeyService } from './data-key-rotation.js';

export function dataKeyRoutes(keys: DataKeyService): AnyRoute[] {
  const tags = ['security'];
  return [
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/security/data-key', summary: 'Read the org\u2019s data-key state: active key, latest rotation\u2019s progress, retired keys and when each is destroyed', tags,
      auth: { mode: 'session' }, permission: 'settings:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: dataKeyState }, errors: ['step_up_required'],
      handler: ({ ctx }) => keys.state(requireOrg(ctx).orgId),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/security/rotate-data-key',
      summary: 'Rotate the org\u2019s data key: new values are sealed with a new key at once, a background job re-encrypts the existing ones, the old key stays for the rollback window', tags,
      auth: { mode: 'session' }, permission: 'data_keys:rotate', rateLimit: 'authenticated', audit: { action: 'org_key.rotated' }, stepUp: true,
      status: 202, schema: { params: orgParams, response: dataKeyState },
      // conflict: a rotation is already running, or the org has no data key yet (nothing sealed).
      errors: ['conflict'],
      handler: ({ ctx }) => keys.rotate(ctx, requireOrg(ctx).orgId),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/security/rollback-data-key',
      summary: 'Make the most recently retired data key active again (within its rollback window) and re-encrypt the values back under it', tags,
      auth: { mode: 'session' }, permission: 'data_keys:rotate', rateLimit: 'authenticated', audit: { action: 'org_key.rolled_back' }, stepUp: true,
      status: 202, schema: { params: orgParams, response: dataKeyState },
      // conflict: no retired key is within its rollback window.
      errors: ['conflict'],
      handler: ({ ctx }) => keys.rollback(ctx, requireOrg(ctx).orgId),
    }),
  ];
}
