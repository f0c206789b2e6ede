import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams } from '../../http/schemas.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import type { AuditReader } from './reader.js';

const filter = z.string().trim().min(1).max(200).optional();

export function auditRoutes(reader: AuditReader): AnyRoute[] {
  return [
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/audit', summary: 'Page through the organization\u2019s audit trail (newest first)',
      tags: ['audit'], auth: { mode: 'session' }, api: true, permission: 'audit:read', rateLimit: 'authenticated', audit: { none: 'read' }, ownerRecovery: true,
      schema: {
        params: orgParams,
        query: z.strictObject({
          actor: filter,
          action: filter,
          target: filter,
          from: z.coerce.date().optional(),
          to: z.coerce.date().optional(),
          before: z.coerce.number().int().min(1).optional(),
          limit: z.coerce.number().int().min(1).max(200).default(50),
        }),
      },
      handler: ({ ctx, query }) => reader.list(bindingOf(ctx), requireOrg(ctx).orgId, query),
    }),
  ];
}
