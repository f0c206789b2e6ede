import { mkdir, open, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { sql } from 'kysely';
import { sealArchiveRecord, sha256Hex, signDetached, type FieldRef } from '../../crypto/index.js';
import { exec, one, rows, type Database, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { systemContext } from '../../kernel/context.js';
import { GLOBAL_TABLES_WITH_ORG_ID } from '../../db/catalog.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { countRows, readBatch } from './batches.js';
import { EXCLUDED_COLUMNS, EXCLUDED_TABLES, planOf, tenantTables, type TablePlan } from './policy.js';
import type { SigningKeys } from './signing.js';
import { TAR_END, tarEntry } from './tar.js';

export const FORMAT = 'palisade-export/1';

/** Where an export's archive key is sealed: the AAD binds it to its org and export. */
export const archiveKeyRef = (orgId: string, exportId: string): FieldRef => ({ scope: orgId, table: 'org_exports', column: 'key_sealed', row: exportId });

export const archivePath = (dir: string, orgId: string, exportId: string): string => join(dir, orgId, `${exportId}.palx`);

interface Running {
  id: string;
  state: 'queued' | 'running';
  requested_by: string;
  created_at: Date;
  started_at: Date | null;
  key_sealed: string;
  tables: unknown;
  table_no: number;
  cursor: unknown;
  part_no: number;
  bytes_written: string | number;
  records_written: string | number;
  rows_done: string | number;
}

export interface ArchiveDeps {
  db: Database;
  sealer: Sealer;
  audit: AuditWriter;
  clock: Clock;
  signing: SigningKeys;
  dir: string;
  retentionDays: number;
  /** Rows per batch (one transaction, one encrypted record). */
  batchSize?: number;
  /** Tests: runs after a batch is written to the file, before its transaction commits (throw to kill it there). */
  beforeCommit?: () => void;
}

/**
 * The plan as it was when the export started: tables added since are not in this archive (its
 * manifest lists what it holds), and a table dropped since is read as empty. The catalog's
 * current columns and exclusions still apply, so a secret column added meanwhile stays out.
 */
function frozen(current: TablePlan[], names: unknown): TablePlan[] {
  if (names === null || names === undefined) return current;
  const list = (typeof names === 'string' ? JSON.parse(names) : names) as string[];
  return list.map((name) => current.find((t) => t.name === name) ?? { name, columns: [], excluded: [], key: [], gone: true });
}

const parseCursor = (c: unknown): string[] | null => (c === null || c === undefined ? null : ((typeof c === 'string' ? JSON.parse(c) : c) as string[]));

/**
 * Writes one export, one batch per call, each in one transaction of the org: read the batch,
 * append it to the archive as one encrypted record at the offset the database says is committed
 * (truncating whatever a crashed attempt left past it), and record the new offset and resume
 * point with the part it wrote. The archive is offered for download only once the final record
 * (the signed manifest) is written and the state says done, in the same transaction.
 */
export function createArchiveWriter(deps: ArchiveDeps) {
  const size = deps.batchSize ?? 2000;
  let signer: Promise<{ kid: string; privatePkcs8: string }> | null = null;
  /** The deployment's signing key, opened once per process (a failure is retried at the next step). */
  const signerKey = () =>
    (signer ??= deps.signing.signer().catch((err: unknown) => {
      signer = null;
      throw err;
    }));

  async function start(tx: Tx, orgId: string, ex: Running, plan: TablePlan[], file: string): Promise<void> {
    let total = 0;
    for (const t of plan) total += await countRows(tx, orgId, t);
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    await writeFile(file, Buffer.alloc(0), { mode: 0o600 });
    await exec(tx, sql`update org_exports set state = 'running', started_at = ${deps.clock.now().toISOString()}, rows_total = ${total},
                         tables = ${JSON.stringify(plan.map((t) => t.name))}::jsonb
                       where org_id = ${orgId} and id = ${ex.id}`);
  }

  function manifestOf(orgId: string, ex: Running, plan: TablePlan[], parts: PartRow[], kid: string, finishedAt: Date) {
    return {
      format: FORMAT,
      exportId: ex.id,
      orgId,
      requestedBy: ex.requested_by,
      requestedAt: ex.created_at.toISOString(),
      startedAt: ex.started_at?.toISOString() ?? null,
      finishedAt: finishedAt.toISOString(),
      signature: { alg: 'EdDSA', kid, file: 'manifest.sig', encoding: 'base64', keys: '/.well-known/palisade-export-keys' },
      consistency: 'each file is one batch read in its own transaction of the org, in primary-key order: the archive is not one snapshot (an org being deleted is frozen, so its export is)',
      tables: plan.map((t) => {
        const mine = parts.filter((p) => p.table_name === t.name);
        return {
          name: t.name,
          rows: mine.reduce((n, p) => n + p.rows, 0),
          columns: t.columns,
          excludedColumns: EXCLUDED_COLUMNS[t.name] ?? {},
          files: mine.map((p) => ({ name: p.file, rows: p.rows, bytes: Number(p.bytes), sha256: p.sha256 })),
        };
      }),
      excludedTables: EXCLUDED_TABLES,
      notTenantTables: Object.fromEntries(Object.entries(GLOBAL_TABLES_WITH_ORG_ID).map(([k, v]) => [k, v.why])),
    };
  }

  async function finish(tx: Tx, orgId: string, ex: Running, plan: TablePlan[], key: Buffer, write: (b: Buffer) => Promise<void>) {
    const { kid, privatePkcs8 } = await signerKey();
    const now = deps.clock.now();
    const parts = await rows<PartRow>(tx, sql`select table_name, file, rows, bytes, sha256 from org_export_parts where org_id = ${orgId} and export_id = ${ex.id} order by part_no`);
    const manifest = Buffer.from(`${JSON.stringify(manifestOf(orgId, ex, plan, parts, kid, now), null, 2)}\n`);
    const signature = Buffer.from(`${signDetached(privatePkcs8, manifest)}\n`);
    const tail = Buffer.concat([tarEntry('manifest.json', manifest, now), tarEntry('manifest.sig', signature, now), TAR_END]);
    const record = sealArchiveRecord(key, ex.id, Number(ex.records_written), true, tail);
    await write(record);
    const expires = new Date(now.getTime() + deps.retentionDays * 86_400_000);
    await exec(tx, sql`update org_exports set state = 'done', finished_at = ${now.toISOString()}, expires_at = ${expires.toISOString()},
                         manifest_sha256 = ${sha256Hex(manifest)}, bytes_written = bytes_written + ${record.length}, records_written = records_written + 1
                       where org_id = ${orgId} and id = ${ex.id}`);
    await deps.audit.append(tx, orgId, systemContext('export job'), {
      action: 'org.export_completed', target: { type: 'org_export', id: ex.id },
      details: { rows: Number(ex.rows_done), files: parts.length, manifestSha256: sha256Hex(manifest), signingKey: kid, expiresAt: expires.toISOString() },
    });
  }

  return {
    /** One step of the export (start, one batch, or the signed end): 'more' until it is done or gone. */
    async step(orgId: string, exportId: string): Promise<'more' | 'done'> {
      // The signing key lives in the system scope: opened before the org's transaction (one connection on PGlite).
      await signerKey();
      return deps.db.withTenant({ orgId, projectIds: null }, async (tx) => {
        const ex = await one<Running>(
          tx,
          sql`select id, state, requested_by, created_at, started_at, key_sealed, tables, table_no, cursor, part_no, bytes_written, records_written, rows_done
              from org_exports where org_id = ${orgId} and id = ${exportId} and state in ('queued', 'running') for update`,
        );
        if (!ex) return 'done';
        const plan = frozen(planOf(await tenantTables(tx)), ex.tables);
        const file = archivePath(deps.dir, orgId, ex.id);
        if (ex.state === 'queued') {
          await start(tx, orgId, ex, plan, file);
          deps.beforeCommit?.();
          return 'more';
        }
        const key = Buffer.from(await deps.sealer.open(tx, archiveKeyRef(orgId, ex.id), ex.key_sealed), 'base64');
        const fh = await open(file, 'r+');
        try {
          const offset = Number(ex.bytes_written);
          // Whatever a crashed attempt appended after the last commit goes: the batch is redone.
          await fh.truncate(offset);
          const write = async (b: Buffer) => {
            await fh.write(b, 0, b.length, offset);
            await fh.datasync();
          };
          const t = plan[ex.table_no];
          if (!t) {
            await finish(tx, orgId, ex, plan, key, write);
            deps.beforeCommit?.();
            return 'done';
          }
          const batch = t.gone ? [] : await readBatch(tx, orgId, t, parseCursor(ex.cursor), size, deps.sealer);
          const last = batch.length === size ? batch[batch.length - 1] : undefined;
          if (batch.length > 0) {
            const partNo = ex.part_no + 1;
            const name = `tables/${t.name}/${String(partNo).padStart(6, '0')}.ndjson`;
            const data = Buffer.from(`${batch.map((r) => r.line).join('\n')}\n`);
            const record = sealArchiveRecord(key, ex.id, Number(ex.records_written), false, tarEntry(name, data, deps.clock.now()));
            await write(record);
            await exec(tx, sql`insert into org_export_parts (org_id, export_id, part_no, table_name, file, rows, bytes, sha256)
                               values (${orgId}, ${ex.id}, ${partNo}, ${t.name}, ${name}, ${batch.length}, ${data.length}, ${sha256Hex(data)})`);
            await exec(tx, sql`update org_exports set part_no = ${partNo}, bytes_written = bytes_written + ${record.length},
                                 records_written = records_written + 1, rows_done = rows_done + ${batch.length} where org_id = ${orgId} and id = ${ex.id}`);
          }
          // A full batch: more may follow after its last key; a short one ends the table.
          // attempts counts consecutive failures: a long export survives the odd transient error.
          await exec(tx, sql`update org_exports set attempts = 0, table_no = ${last ? ex.table_no : ex.table_no + 1},
                               cursor = ${last ? JSON.stringify(last.key) : null}::jsonb where org_id = ${orgId} and id = ${ex.id}`);
          deps.beforeCommit?.();
          return 'more';
        } finally {
          await fh.close();
        }
      });
    },

    /** Deletes the archives of the org whose retention ended, or all of them once the org is shredded. Returns how many. */
    async expire(orgId: string): Promise<number> {
      const now = deps.clock.now().toISOString();
      const gone = await deps.db.withTenant({ orgId, projectIds: null }, async (tx) => {
        const due = await rows<{ id: string }>(
          tx,
          // Past retention, or the org was shredded: its archives no longer open (their keys went with its data keys), so they go now.
          sql`update org_exports set state = 'expired' where org_id = ${orgId} and state = 'done'
                and (expires_at <= ${now} or exists (select 1 from organizations o where o.org_id = ${orgId} and o.shredded_at is not null))
              returning id`,
        );
        for (const e of due) {
          // In clear: a shredded org has no key left to seal with, and the event holds an id only.
          await deps.audit.append(tx, orgId, systemContext('export job'), { clear: true, action: 'org.export_expired', target: { type: 'org_export', id: e.id }, details: {} });
        }
        return due.map((e) => e.id);
      });
      // Once the rows say expired: a file removed before a commit that then failed would leave a
      // 'done' export whose links download nothing.
      for (const id of gone) await rm(archivePath(deps.dir, orgId, id), { force: true });
      return gone.length;
    },

    /** After repeated failures: the export is failed and its partial archive deleted (never offered). */
    async fail(orgId: string, exportId: string, code: string, maxAttempts: number): Promise<void> {
      const r = await deps.db.withTenant({ orgId, projectIds: null }, async (tx) =>
        one<{ attempts: number }>(
          tx,
          sql`update org_exports set attempts = attempts + 1,
                state = case when attempts + 1 >= ${maxAttempts} then 'failed' else state end,
                error = case when attempts + 1 >= ${maxAttempts} then ${code} else error end,
                finished_at = case when attempts + 1 >= ${maxAttempts} then ${deps.clock.now().toISOString()}::timestamptz else finished_at end
              where org_id = ${orgId} and id = ${exportId} and state in ('queued', 'running') returning attempts`,
        ));
      if (r && r.attempts >= maxAttempts) await rm(archivePath(deps.dir, orgId, exportId), { force: true });
    },
  };
}

interface PartRow {
  table_name: string;
  file: string;
  rows: number;
  bytes: string | number;
  sha256: string;
}

export type ArchiveWriter = ReturnType<typeof createArchiveWriter>;
