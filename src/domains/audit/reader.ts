import { sql } from 'kysely';
import type { Database, TenantBinding, Tx } from '../../db/database.js';
import { rows } from '../../db/database.js';
import { SealedValueError } from '../../crypto/index.js';
import type { Sealer } from '../keys/sealer.js';
import { personalDigest, personalRef, type PersonalPart } from './writer.js';

export interface AuditQuery {
  actor?: string | undefined;
  action?: string | undefined;
  target?: string | undefined;
  from?: Date | undefined;
  to?: Date | undefined;
  /** Sequence number to continue below (newest first). */
  before?: number | undefined;
  limit: number;
}

export interface AuditEventView {
  seq: number;
  id: string;
  at: string;
  actor: { type: string; id: string | null; role: string | null };
  action: string;
  target: { type: string; id: string } | null;
  result: string;
  ip: string;
  userAgent: string;
  requestId: string;
  details: unknown;
  /**
   * The event's personal part (details, address, user agent): `clear` in an event written before
   * they were sealed; `open` when sealed and opened; `unreadable` when its data key is gone (the
   * org was shredded) or the part does not match the digest the chain holds; `erased` when a
   * data-subject erasure destroyed it (tenancy/subject.ts).
   */
  personal: 'clear' | 'open' | 'unreadable' | 'erased';
  hash: string;
}

export interface AuditReader {
  list(binding: TenantBinding, orgId: string, q: AuditQuery): Promise<{ events: AuditEventView[]; nextBefore: number | null }>;
  /**
   * Up to `limit` events after position `afterSeq`, oldest first, in the caller's transaction
   * (bound to the org): what an audit stream sends next. The org's committed events are a
   * gap-free prefix of its chain (appends serialize on its head), so nothing is skipped.
   */
  since(tx: Tx, orgId: string, afterSeq: number, limit: number): Promise<AuditEventView[]>;
}

type EventRow = {
  seq: number | string; id: string; at: Date; actor_type: string; actor_id: string | null; actor_role: string | null;
  action: string; target_type: string | null; target_id: string | null; result: string; ip: string;
  user_agent: string; request_id: string; details: unknown; personal_sealed: string | null; hash: string;
};

const EVENT_COLUMNS = sql`seq, id, at, actor_type, actor_id, actor_role, action, target_type, target_id, result, ip, user_agent, request_id, details,
  personal_sealed, hash`;

type Opener = (ref: ReturnType<typeof personalRef>, sealed: string) => Promise<string>;

/** The sealed personal part, opened and checked against the digest the chain holds; null when it cannot be read. */
export async function openPersonal(open: Opener, orgId: string, r: Pick<EventRow, 'id' | 'details' | 'personal_sealed'>): Promise<PersonalPart | null> {
  const digest = (r.details as { sealed?: unknown } | null)?.sealed;
  if (!r.personal_sealed || typeof digest !== 'string') return null;
  try {
    const plaintext = await open(personalRef(orgId, r.id), r.personal_sealed);
    return personalDigest(plaintext) === digest ? (JSON.parse(plaintext) as PersonalPart) : null;
  } catch (err) {
    // A destroyed key (a shredded org), a tampered value: the event says so, the page goes on.
    // Anything else (a KEK this process lacks, a token fault, the database) is not the event's
    // state: it fails the read, so a stream retries instead of shipping the event without its
    // details, and nobody is told a key was destroyed when it was not (review of 034, finding 2).
    if (err instanceof SealedValueError) return null;
    throw err;
  }
}

async function viewOf(open: Opener, orgId: string, r: EventRow): Promise<AuditEventView> {
  const sealed = r.personal_sealed !== null || (typeof r.details === 'object' && r.details !== null && 'sealed' in r.details && Object.keys(r.details).length === 1);
  const part = sealed ? await openPersonal(open, orgId, r) : null;
  return {
    seq: Number(r.seq),
    id: r.id,
    at: r.at.toISOString(),
    actor: { type: r.actor_type, id: r.actor_id, role: r.actor_role },
    action: r.action,
    target: r.target_type && r.target_id ? { type: r.target_type, id: r.target_id } : null,
    result: r.result,
    ip: part ? part.ip : r.ip,
    userAgent: part ? part.userAgent : r.user_agent,
    requestId: r.request_id,
    details: part ? part.details : sealed ? {} : r.details,
    personal: !sealed ? 'clear' : part ? 'open' : r.personal_sealed === null ? 'erased' : 'unreadable',
    hash: r.hash,
  };
}

export function createAuditReader(deps: { db: Database; sealer: Sealer }): AuditReader {
  return {
    async list(binding, orgId, q) {
      return deps.db.withTenant(binding, async (tx) => {
        const list = await rows<EventRow>(
          tx,
          sql`select ${EVENT_COLUMNS}
              from audit_events
              where org_id = ${orgId}
                and (${q.actor ?? null}::text is null or actor_id = ${q.actor ?? null})
                and (${q.action ?? null}::text is null or action = ${q.action ?? null} or starts_with(action, ${q.action ? `${q.action}.` : null}))
                and (${q.target ?? null}::text is null or target_id = ${q.target ?? null})
                and (${q.from?.toISOString() ?? null}::timestamptz is null or at >= ${q.from?.toISOString() ?? null}::timestamptz)
                and (${q.to?.toISOString() ?? null}::timestamptz is null or at < ${q.to?.toISOString() ?? null}::timestamptz)
                and (${q.before ?? null}::bigint is null or seq < ${q.before ?? null}::bigint)
              order by seq desc limit ${q.limit + 1}`,
        );
        const page = list.slice(0, q.limit);
        const open = deps.sealer.opener(tx);
        const events: AuditEventView[] = [];
        for (const r of page) events.push(await viewOf(open, orgId, r));
        return {
          events,
          nextBefore: list.length > q.limit ? Number(page[page.length - 1]?.seq) : null,
        };
      });
    },
    async since(tx, orgId, afterSeq, limit) {
      const list = await rows<EventRow>(
        tx,
        sql`select ${EVENT_COLUMNS} from audit_events where org_id = ${orgId} and seq > ${afterSeq} order by seq limit ${limit}`,
      );
      const open = deps.sealer.opener(tx);
      const events: AuditEventView[] = [];
      for (const r of list) events.push(await viewOf(open, orgId, r));
      return events;
    },
  };
}
