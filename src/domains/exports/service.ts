import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { pipeline, type Readable } from 'node:stream';
import { sql } from 'kysely';
import { archiveOpener, mintOpaqueToken, newArchiveKey, newId, opaqueTokenHash } from '../../crypto/index.js';
import { exec, one, rows, type Database } from '../../db/database.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { isUuid } from '../../kernel/ids.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { archiveKeyRef, archivePath } from './archive.js';
import type { ExportLinkView, ExportView } from './responses.js';

export interface ExportDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  dir: string;
  linkMinutes: number;
  /** Wakes this process's export job (a request is due at once). */
  onRequested?: () => void;
}

interface ExportRow {
  id: string;
  state: ExportView['state'];
  requested_by: string;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  expires_at: Date | null;
  rows_total: string | number;
  rows_done: string | number;
  bytes_written: string | number;
  manifest_sha256: string | null;
  error: string | null;
}

const COLUMNS = sql`id, state, requested_by, created_at, started_at, finished_at, expires_at, rows_total, rows_done, bytes_written, manifest_sha256, error`;

const viewOf = (r: ExportRow): ExportView => ({
  id: r.id,
  state: r.state,
  requestedBy: r.requested_by,
  requestedAt: r.created_at.toISOString(),
  startedAt: r.started_at?.toISOString() ?? null,
  finishedAt: r.finished_at?.toISOString() ?? null,
  expiresAt: r.expires_at?.toISOString() ?? null,
  rowsDone: Number(r.rows_done),
  rowsTotal: Number(r.rows_total),
  bytes: r.state === 'done' ? Number(r.bytes_written) : null,
  manifestSha256: r.manifest_sha256,
  error: r.error,
});

/** At most this many exports in the list (newest first); older ones stay in the audit trail. */
const LIST_LIMIT = 20;

/**
 * Tenant exports as owners drive them: ask for one, watch its progress, ask for a download link,
 * and the link's single use. The archive itself is written by the export job (archive.ts).
 */
/** Archives an org keeps at once, the one being asked for included (review: repeated exports filled the shared disk). */
export const ARCHIVES_KEPT = 3;

export function createExportService(deps: ExportDeps) {
  const { db, audit, clock, sealer } = deps;
  return {
    async request(ctx: RequestContext): Promise<ExportView> {
      const org = requireOrg(ctx);
      const by = userActorOf(ctx).userId;
      const id = newId();
      const now = clock.now().toISOString();
      const view = await db.withTenant(bindingOf(ctx), async (tx) => {
        // One export in flight per org: a second would only double the work (and the disk).
        await exec(tx, sql`select org_id from organizations where org_id = ${org.orgId} for update`);
        const busy = await one<{ id: string }>(tx, sql`select id from org_exports where org_id = ${org.orgId} and state in ('queued', 'running')`);
        if (busy) throw new AppError('conflict', `export ${busy.id} is still being written: wait for it (GET /api/orgs/${org.orgId}/exports/${busy.id})`);
        // The export disk is shared by every org: an org keeps its newest archives only, the
        // older ones expire now (the job deletes their files on its next turn).
        await exec(tx, sql`update org_exports set expires_at = ${now} where org_id = ${org.orgId} and state = 'done' and expires_at > ${now}
                           and id not in (select id from org_exports where org_id = ${org.orgId} and state = 'done' and expires_at > ${now}
                                          order by finished_at desc limit ${ARCHIVES_KEPT - 1})`);
        const keySealed = await sealer.seal(tx, archiveKeyRef(org.orgId, id), newArchiveKey().toString('base64'));
        await exec(tx, sql`insert into org_exports (org_id, id, requested_by, state, created_at, key_sealed)
                           values (${org.orgId}, ${id}, ${by}, 'queued', ${now}, ${keySealed})`);
        await audit.append(tx, org.orgId, ctx, { action: 'org.export_requested', target: { type: 'org_export', id }, details: {} });
        // With the export, not after it: an export without its due row would stay queued, and
        // refuse every later request as busy (export_due is global, no RLS).
        await exec(tx, sql`insert into export_due (org_id, due_at) values (${org.orgId}, ${now})
                           on conflict (org_id) do update set due_at = least(export_due.due_at, excluded.due_at)`);
        return viewOf(await one<ExportRow>(tx, sql`select ${COLUMNS} from org_exports where org_id = ${org.orgId} and id = ${id}`) as ExportRow);
      });
      deps.onRequested?.();
      return view;
    },

    async list(ctx: RequestContext): Promise<ExportView[]> {
      const org = requireOrg(ctx);
      const list = await db.withTenant(bindingOf(ctx), (tx) =>
        rows<ExportRow>(tx, sql`select ${COLUMNS} from org_exports where org_id = ${org.orgId} order by created_at desc, id limit ${LIST_LIMIT}`),
      );
      return list.map(viewOf);
    },

    async get(ctx: RequestContext, id: string): Promise<ExportView> {
      const org = requireOrg(ctx);
      const r = await db.withTenant(bindingOf(ctx), (tx) => one<ExportRow>(tx, sql`select ${COLUMNS} from org_exports where org_id = ${org.orgId} and id = ${id}`));
      if (!r) throw new AppError('not_found');
      return viewOf(r);
    },

    /** A single-use download link; the token is shown once, only its hash is kept. */
    async link(ctx: RequestContext, id: string): Promise<ExportLinkView> {
      const org = requireOrg(ctx);
      const by = userActorOf(ctx).userId;
      const now = clock.now();
      const expires = new Date(now.getTime() + deps.linkMinutes * 60_000);
      const { token, hash } = mintOpaqueToken('exportDownload');
      await db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await one<{ state: string }>(tx, sql`select state from org_exports where org_id = ${org.orgId} and id = ${id}`);
        if (!r) throw new AppError('not_found');
        if (r.state !== 'done') throw new AppError('conflict', `the export is ${r.state}: only a finished export can be downloaded`);
        await exec(tx, sql`insert into org_export_links (org_id, id, export_id, token_hash, created_by, created_at, expires_at)
                           values (${org.orgId}, ${newId()}, ${id}, ${hash}, ${by}, ${now.toISOString()}, ${expires.toISOString()})`);
        await audit.append(tx, org.orgId, ctx, { action: 'org.export_link_created', target: { type: 'org_export', id }, details: { expiresAt: expires.toISOString() } });
      });
      return { url: `/api/export-downloads/${org.orgId}/${id}?token=${token}`, expiresAt: expires.toISOString() };
    },

    /**
     * Spends a link (one statement: of two concurrent downloads one finds it unused) and opens
     * the archive: the plaintext tar, decrypted as it streams. Every refusal is the same
     * token_invalid: unknown, spent, expired, another export's, an export no longer done.
     */
    async download(ctx: RequestContext, orgId: string, exportId: string, token: string): Promise<{ stream: Readable; fileName: string }> {
      const hash = opaqueTokenHash('exportDownload', token);
      // The ids name a file path: uuids only (the route checks it; so does this, for any other caller).
      if (!hash || !isUuid(orgId) || !isUuid(exportId)) throw new AppError('token_invalid');
      const now = clock.now().toISOString();
      // Before the link is spent: a lost archive (another machine's disk) must not cost the link.
      const file = archivePath(deps.dir, orgId, exportId);
      await access(file).catch(() => {
        throw new AppError('token_invalid');
      });
      const opened = await db.withTenant({ orgId, projectIds: null }, async (tx) => {
        const used = await one<{ id: string }>(
          tx,
          sql`update org_export_links l set used_at = ${now}
              from org_exports e
              where l.org_id = ${orgId} and l.export_id = ${exportId} and l.token_hash = ${hash} and l.used_at is null and l.expires_at > ${now}
                and e.org_id = l.org_id and e.id = l.export_id and e.state = 'done' and e.expires_at > ${now}
              returning l.id`,
        );
        if (!used) return null;
        const e = await one<{ key_sealed: string }>(tx, sql`select key_sealed from org_exports where org_id = ${orgId} and id = ${exportId}`);
        if (!e) return null;
        const key = Buffer.from(await sealer.open(tx, archiveKeyRef(orgId, exportId), e.key_sealed), 'base64');
        await audit.append(tx, orgId, ctx, { action: 'org.export_downloaded', target: { type: 'org_export', id: exportId }, details: { link: used.id } });
        return key;
      }).catch((err: unknown) => {
        // A shredded org's archive key no longer opens: the link is worth nothing.
        if (err instanceof AppError) throw err;
        throw new AppError('token_invalid');
      });
      if (!opened) throw new AppError('token_invalid');
      // pipeline: a read error or a record that fails its tag destroys the answer (the client sees it cut).
      const stream = pipeline(createReadStream(file), archiveOpener(opened, exportId), () => undefined);
      return { stream, fileName: `palisade-export-${exportId}.tar` };
    },
  };
}

export type ExportService = ReturnType<typeof createExportService>;
