import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams } from '../../http/schemas.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import type { AuditEventView as StoredEvent, AuditReader } from './reader.js';
import { auditPage, chainVerification, type AuditEventView } from './responses.js';
import type { AuditVerifier } from './verification.js';
import type { AuditResult } from './writer.js';

const filter = z.string().trim().min(1).max(200).optional();

/**
 * The reader's event in the declared shape: the table's check constraint keeps `result` to
 * the three AuditResult values, and the writer always stores an object as `details` (`{}` for none).
 */
function eventView(e: StoredEvent): AuditEventView {
  const d = e.details;
  const details = typeof d === 'object' && d !== null && !Array.isArray(d) ? (d as Record<string, unknown>) : {};
  return { ...e, result: e.result as AuditResult, details };
}

/** A bound of the time filter, as ISO 8601: a day (2026-12-04, midnight UTC) or a date-time with its offset. */
const moment = z
  .union([z.iso.date(), z.iso.datetime({ offset: true })], { error: 'expected an ISO 8601 date or date-time, e.g. 2026-12-04 or 2026-12-04T09:30:00Z' })
  .transform((v) => new Date(v));

export function auditRoutes(reader: AuditReader, verifier: AuditVerifier): AnyRoute[] {
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
          from: moment.optional(),
          to: moment.optional(),
          before: z.coerce.number().int().min(1).optional(),
          limit: z.coerce.number().int().min(1).max(200).default(50),
        }),
        response: auditPage,
      },
      // An owner outside the admin IP allowlist keeps the trail with a fresh step-up (ownerRecovery);
      // any member is sent to step up by the org's MFA policy when their session was not proven with
      // their second factor (problemCodesOf derives only mfa_enrollment_required from that policy).
      errors: ['step_up_required'],
      handler: async ({ ctx, query }) => {
        const page = await reader.list(bindingOf(ctx), requireOrg(ctx).orgId, query);
        return { ...page, events: page.events.map(eventView) };
      },
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/audit/verification',
      summary: 'Verify the organization\u2019s audit hash chain (every event, the head, the latest checkpoint)',
      tags: ['audit'], auth: { mode: 'session' }, api: true, permission: 'audit:read', audit: { none: 'read' }, ownerRecovery: true,
      // A walk of the whole chain: its own, small budget (rate-limit/policies.ts).
      rateLimit: 'audit-verify',
      schema: { params: orgParams, response: chainVerification },
      // As the trail: ownerRecovery and the org's MFA policy can send the caller to step up.
      errors: ['step_up_required', 'unavailable'], // unavailable: the chain moved under every walk (retry)
      handler: ({ ctx }) => verifier.verify(bindingOf(ctx), requireOrg(ctx).orgId),
    }),
  ];
}
