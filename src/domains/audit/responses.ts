import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';

/**
 * What the audit trail page answers: each event as the chain holds it (its key id stays
 * inside), and the cursor to the next page.
 */
export const auditEventView = z.object({
  seq: z.number().int().meta({ description: 'Position in the org\u2019s chain; pages continue below it (`before`)' }),
  id: uuid,
  at: timestamp,
  actor: z.object({
    type: z.string().meta({ description: 'Who acted: user, api_key, system, anonymous, inbound_source or integration (host code using a credential; id: the name it gave)' }),
    id: z.string().nullable(),
    role: z.string().nullable(),
  }),
  action: z.string().meta({ description: 'One of the catalogue in x-palisade-audit-actions (older events may carry retired names)' }),
  target: z.object({ type: z.string(), id: z.string() }).nullable(),
  result: z.enum(['success', 'denied', 'failure']),
  ip: z.string(),
  userAgent: z.string(),
  requestId: z.string(),
  details: z.record(z.string(), z.unknown()).meta({ description: 'Free-form facts of the event, as the action recorded them' }),
  personal: z.enum(['clear', 'open', 'unreadable', 'erased']).meta({
    description: 'The event\u2019s details, address and user agent: sealed with the org\u2019s data key and opened for you (open), ' +
      'stored in clear by a version before they were sealed (clear), or unreadable: the key was destroyed (a deleted org) or the stored part ' +
      'does not match the digest the chain holds, or erased: destroyed by a data-subject erasure (the chain still covers its digest); `details` is then empty',
  }),
  hash: z.string().meta({ description: 'The event\u2019s link in the hash chain (an HMAC under a key the database does not hold)' }),
});
export type AuditEventView = z.infer<typeof auditEventView>;

export const auditPage = z.object({
  events: z.array(auditEventView),
  nextBefore: z.number().int().nullable().meta({ description: 'Pass as `before` for the next (older) page; null on the last one' }),
});

/** The org's hash chain verified on request, as `palisade audit verify --org` does, with the server's chain keys. */
export const chainVerification = z.object({
  ok: z.boolean().meta({ description: 'Every event verifies, links to its predecessor, the head matches, and the chain reaches its latest checkpoint' }),
  events: z.number().int().nonnegative().meta({ description: 'Events walked' }),
  problems: z.array(z.string()).meta({
    description: 'Each edited, deleted or reordered event by position and id, and a truncated tail; at most 20, then one line counting the rest',
  }),
  checkedAt: timestamp,
});
export type ChainVerification = z.infer<typeof chainVerification>;
