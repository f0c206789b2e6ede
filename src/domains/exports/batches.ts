import { sql } from 'kysely';
import { SealedValueError } from '../../crypto/index.js';
import { one, rows, type Tx } from '../../db/database.js';
import type { Sealer } from '../keys/index.js';
import { openPersonal } from '../audit/index.js';
import { OPENED_COLUMNS, type TablePlan } from './policy.js';

/** One row as written: its NDJSON line and its key (the resume point after it). */
export interface ExportedRow {
  line: string;
  key: string[];
}

const ident = (name: string) => sql.id(name);

/**
 * Up to `limit` rows of one table after `cursor`, in primary-key order, as JSON built by
 * PostgreSQL (to_jsonb of the row less its excluded columns). Read in the org's transaction:
 * RLS binds the org, and the explicit org_id filter is the first layer (the two must agree).
 */
export async function readBatch(tx: Tx, orgId: string, t: TablePlan, cursor: string[] | null, limit: number, sealer: Sealer): Promise<ExportedRow[]> {
  // Qualified: an output alias (j, k, id) must never stand for a key column in ORDER BY.
  const keys = sql.join(t.key.map((k) => sql`x.${ident(k.column)}`));
  const after = cursor
    ? sql`and (${keys}) > (${sql.join(cursor.map((v, i) => sql`${v}::${sql.raw(t.key[i]?.type ?? 'text')}`))})`
    : sql``;
  const keyText = sql.join(t.key.map((k) => sql`x.${ident(k.column)}::text`));
  const audit = t.name === 'audit_events';
  const opened = OPENED_COLUMNS[t.name];
  const list = await rows<{ j: string; k: string; id?: string; details?: unknown; personal_sealed?: string | null; sealed?: string | null }>(
    tx,
    sql`select (to_jsonb(x) - ${t.excluded}::text[])::text as j, json_build_array(${keyText})::text as k
               ${audit ? sql`, x.id, x.details, x.personal_sealed` : sql``}
               ${opened ? sql`, x.id, x.${ident(opened.column)} as sealed` : sql``}
        from ${ident(t.name)} x where x.org_id = ${orgId} ${after} order by ${keys} limit ${limit}`,
  );
  if (opened) {
    const open = sealer.opener(tx);
    const out: ExportedRow[] = [];
    for (const r of list) {
      // A value that no longer opens (a destroyed key) is written as null, not as its sealed form.
      // Any other failure (the database, the keyring) fails the batch, to be retried: a null written
      // for it would be signed into a 'done' archive as if the value were gone.
      const value = r.sealed
        ? await open({ scope: orgId, table: t.name, column: opened.column, row: r.id ?? '' }, r.sealed).catch((err: unknown) => {
          if (err instanceof SealedValueError) return null;
          throw err;
        })
        : null;
      out.push({ line: `${r.j.slice(0, -1)},${JSON.stringify(opened.as)}:${JSON.stringify(value)}}`, key: JSON.parse(r.k) as string[] });
    }
    return out;
  }
  if (!audit) return list.map((r) => ({ line: r.j, key: JSON.parse(r.k) as string[] }));
  // The audit trail as stored, plus each event's personal part opened (what the org's readers see).
  const open = sealer.opener(tx);
  const out: ExportedRow[] = [];
  for (const r of list) {
    const sealed = r.personal_sealed !== null && r.personal_sealed !== undefined;
    const part = sealed ? await openPersonal(open, orgId, { id: r.id ?? '', details: r.details, personal_sealed: r.personal_sealed ?? null }) : null;
    // No part but a digest in the chain: an erasure destroyed it (the trail reader says the same).
    const d = (typeof r.details === 'string' ? JSON.parse(r.details) : r.details) as Record<string, unknown> | null;
    const erased = !sealed && !!d && Object.keys(d).length === 1 && typeof d.sealed === 'string';
    const personal = erased ? { state: 'erased' } : !sealed ? { state: 'clear' }
      : part ? { state: 'open', details: part.details, ip: part.ip, userAgent: part.userAgent } : { state: 'unreadable' };
    out.push({ line: `${r.j.slice(0, -1)},"personal":${JSON.stringify(personal)}}`, key: JSON.parse(r.k) as string[] });
  }
  return out;
}

export async function countRows(tx: Tx, orgId: string, t: TablePlan): Promise<number> {
  const r = await one<{ n: string | number }>(tx, sql`select count(*) as n from ${ident(t.name)} where org_id = ${orgId}`);
  return Number(r?.n ?? 0);
}
