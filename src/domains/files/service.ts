import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { UploadPlan } from '../../config/index.js';
import { newId, openRange, randomKey } from '../../crypto/index.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import { exec, one, rows, type Database, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import type { UploadSource } from '../../http/upload.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { appendedZip, inspectZip } from './archive.js';
import { uploadAdmission } from './admission.js';
import { plainReader } from './reader.js';
import { ScannerUnavailable, type Scanner, type ScannerFailure } from './clamd.js';
import { checkFileName, DENIED_EXTENSIONS } from './names.js';
import { RESERVATION_STEP_BYTES, assertWithinQuota, ensureUsageRow, quotaProblem, reserveUpTo, sizeText, sweepStale, usedBytes } from './quota.js';
import { receive } from './receive.js';
import type { FileList, FileView } from './responses.js';
import type { FileStore, StoreKey } from './storage.js';

/**
 * A project's files (issue 16). An upload becomes available only after, in order: its size
 * (the plan's per-file limit, and the org's quota, reserved as the bytes arrive), its name, its
 * content (magic bytes against name and declared type), the archive inside it (zip) and clamd's
 * verdict. Any refusal deletes what was stored and the row, releasing the reservation, and is
 * recorded as `file.refused`; when no scanner answers the upload is refused (503), never kept
 * unscanned.
 */

export interface FileServiceDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  store: FileStore;
  /** null: none configured (PALISADE_CLAMD unset). */
  scanner: Scanner | null;
  /** The development opt-out: without a scanner, keep files unscanned instead of refusing them. */
  unscanned: boolean;
  /** Development and test: a refusal for want of a scanner also names the opt-out. */
  development: boolean;
  plans: Readonly<Record<string, UploadPlan>>;
  logger: Logger;
  /** Uploads this process receives at once, all orgs together (each holds a clamd connection); an org may hold an eighth of them, at least 2. */
  concurrency: number;
  /** The scanner gave no verdict, or none is configured (the metric). */
  onScannerUnavailable(reason: ScannerFailure | 'not_configured'): void;
}

/** How long a client should wait before retrying when the scanner is down. */
const SCANNER_RETRY_SECONDS = 30;

const NO_SCANNER = 'uploads are refused: this deployment has no malware scanner configured (its operator sets PALISADE_CLAMD to a clamd)';
const NO_SCANNER_DEV = `${NO_SCANNER}; in development, PALISADE_UPLOADS_UNSCANNED=true keeps files without a scan`;

interface FileRow {
  id: string;
  project_id: string;
  name: string;
  content_type: string;
  size_bytes: string;
  sha256: string;
  active: boolean;
  scanned: boolean;
  uploaded_by_type: 'user' | 'api_key';
  uploaded_by: string;
  available_at: Date;
}

const COLUMNS = sql`id, project_id, name, content_type, size_bytes::text as size_bytes, sha256, active, scanned, uploaded_by_type, uploaded_by, available_at`;

const view = (r: FileRow): FileView => ({
  id: r.id,
  projectId: r.project_id,
  name: r.name,
  contentType: r.content_type,
  sizeBytes: Number(r.size_bytes),
  sha256: r.sha256,
  scanned: r.scanned,
  uploadedBy: { type: r.uploaded_by_type, id: r.uploaded_by },
  createdAt: r.available_at.toISOString(),
});

export const fileKeyRef = (orgId: string, fileId: string) => ({ scope: orgId, table: 'files', column: 'key_sealed', row: fileId });

/** Why an upload was refused, for the audit event and the log: the problem code, or the scanner's failure. */
function refusalOf(err: unknown): { reason: string; detail?: string } {
  if (err instanceof ScannerUnavailable) return { reason: `scanner_${err.reason}` };
  if (err instanceof AppError) return { reason: err.code, ...(err.detail ? { detail: err.detail.slice(0, 300) } : {}) };
  return { reason: 'internal' };
}

export function createFileService(deps: FileServiceDeps) {
  const { db, audit, clock, sealer, store } = deps;

  const unknownPlans = new Set<string>();
  const planOf = async (tx: Tx, orgId: string): Promise<UploadPlan & { name: string }> => {
    const s = await one<{ plan: string }>(tx, sql`select plan from org_settings where org_id = ${orgId}`);
    const name = s?.plan ?? 'free';
    const plan = deps.plans[name];
    if (plan) return { ...plan, name };
    // A plan the configuration no longer lists: the free limits, said once per plan and process.
    if (!unknownPlans.has(name)) {
      unknownPlans.add(name);
      deps.logger.warn({ plan: name }, 'an organization\u2019s plan is not in PALISADE_UPLOAD_PLANS: the free plan\u2019s limits apply');
    }
    const free = deps.plans.free;
    if (!free) throw new Error('no free upload plan');
    return { ...free, name: 'free' };
  };

  const refused = async (ctx: RequestContext, orgId: string, projectId: string, fileId: string | null, err: unknown, name: string | null) => {
    const { reason, detail } = refusalOf(err);
    const signature = err instanceof AppError && err.code === 'malware_detected' ? err.detail : undefined;
    deps.logger.warn({ reqId: ctx.requestId, orgId, projectId, fileId, reason, ...(signature ? { signature } : {}) }, 'upload refused');
    await audit.appendStandalone(orgId, ctx, {
      action: 'file.refused',
      result: 'denied',
      target: { type: 'file', id: fileId ?? 'none' },
      details: { projectId, reason, ...(detail ? { detail } : {}), ...(name ? { name } : {}) },
    });
  };

  const discard = async (ctx: RequestContext, orgId: string, fileId: string) => {
    await db.withTenant(bindingOf(ctx), (tx) => exec(tx, sql`delete from files where org_id = ${orgId} and id = ${fileId} and state = 'receiving'`));
    await purgeGone(orgId);
  };

  /**
   * Deletes from the store the bytes of the org's files whose rows are gone (files_gone, kept by
   * a trigger: a deletion, a refusal, a sweep, a project's cascade), then their entries. An entry
   * whose delete failed stays for the next turn.
   */
  const purgeGone = async (orgId: string): Promise<void> => {
    const gone = await db.withTenant({ orgId, projectIds: null }, (tx) => rows<{ file_id: string }>(tx, sql`select file_id from files_gone where org_id = ${orgId} order by gone_at limit 200`));
    const done: string[] = [];
    for (const { file_id: fileId } of gone) {
      try {
        await store.delete({ orgId, fileId });
        done.push(fileId);
      } catch (err) {
        deps.logger.error({ code: (err as { code?: string }).code, orgId, fileId }, 'could not delete a gone file\u2019s bytes (kept for the next turn)');
      }
    }
    if (done.length > 0) await db.withTenant({ orgId, projectIds: null }, (tx) => exec(tx, sql`delete from files_gone where org_id = ${orgId} and file_id = any(${done}::uuid[])`));
  };

  const admit = uploadAdmission(deps.concurrency);

  return {
    async list(ctx: RequestContext, projectId: string, limit: number): Promise<FileList> {
      const org = requireOrg(ctx);
      return db.withTenant(bindingOf(ctx), async (tx) => {
        const p = await one<{ file_extensions: string[] | null }>(tx, sql`select file_extensions from projects where org_id = ${org.orgId} and id = ${projectId}`);
        if (!p) throw new AppError('not_found');
        const list = await rows<FileRow>(
          tx,
          sql`select ${COLUMNS} from files where org_id = ${org.orgId} and project_id = ${projectId} and state = 'available'
              order by created_at desc, id limit ${limit}`,
        );
        const plan = await planOf(tx, org.orgId);
        return {
          files: list.map(view),
          limits: { plan: plan.name, fileBytes: plan.fileBytes, quotaBytes: plan.quotaBytes, usedBytes: await usedBytes(tx, org.orgId), extensions: p.file_extensions },
        };
      });
    },

    async upload(ctx: RequestContext, projectId: string, source: UploadSource): Promise<FileView> {
      const org = requireOrg(ctx);
      const orgId = org.orgId;
      const actor = ctx.actor.type === 'user' ? { type: 'user' as const, id: ctx.actor.userId } : ctx.actor.type === 'api_key' ? { type: 'api_key' as const, id: ctx.actor.keyId } : null;
      if (!actor) throw new AppError('forbidden');
      const fileId = newId();
      const key: StoreKey = { orgId, fileId };
      let name: string | null = null;
      let stored = false;
      let release: (() => void) | null = null;
      try {
        // 1. Size, before a byte is read: the plan's per-file limit against what the request says it holds.
        const { plan, extensions } = await db.withTenant(bindingOf(ctx), async (tx) => {
          const p = await one<{ file_extensions: string[] | null }>(tx, sql`select file_extensions from projects where org_id = ${orgId} and id = ${projectId}`);
          if (!p) throw new AppError('not_found');
          await sweepStale(tx, orgId, clock.now());
          return { plan: await planOf(tx, orgId), extensions: p.file_extensions };
        });
        // Bytes left by swept rows, and by files that went with a deleted project.
        await purgeGone(orgId);
        const part = await source.file(plan.fileBytes, `${sizeText(plan.fileBytes)} on this organization's plan`);
        // 2. The name, before the bytes.
        const checked = checkFileName(part.fileName, extensions);
        name = checked.name;
        // A well-formed upload, then: without a scanner it cannot be kept (fail closed).
        // Not a passing outage: no Retry-After.
        if (!deps.scanner && !deps.unscanned) {
          deps.onScannerUnavailable('not_configured');
          throw new AppError('scanner_unavailable', deps.development ? NO_SCANNER_DEV : NO_SCANNER);
        }
        release = admit(orgId);
        const fileKey = randomKey();
        await db.withTenant(bindingOf(ctx), async (tx) => {
          const keySealed = await sealer.seal(tx, fileKeyRef(orgId, fileId), fileKey.toString('base64'));
          const now = clock.now();
          await exec(
            tx,
            sql`insert into files (org_id, project_id, id, name, content_type, state, reserved_bytes, key_sealed, scanned, uploaded_by_type, uploaded_by, created_at, touched_at)
                values (${orgId}, ${projectId}, ${fileId}, ${checked.name}, 'application/octet-stream', 'receiving', 0, ${keySealed},
                        ${deps.scanner !== null}, ${actor.type}, ${actor.id}, ${now}, ${now})`,
          );
          await ensureUsageRow(tx, orgId);
          await assertWithinQuota(tx, orgId, plan.quotaBytes);
        });
        stored = true;
        // 3-5. Content, sealing and the scan as the bytes stream; then the archive inside.
        const got = await receive({
          source: part.stream,
          extension: checked.extension,
          declaredType: part.declaredType,
          key: fileKey,
          fileId,
          storeKey: key,
          store,
          scanner: deps.scanner,
          reserved: 0,
          // The whole file at once when the request says how long it is (a multipart body is longer
          // than its file), else a step ahead of the bytes; near the quota, what is left.
          grow: async (bytes) => {
            if (bytes > plan.quotaBytes) throw quotaProblem(plan.quotaBytes);
            const want = Math.min(plan.fileBytes, source.declaredLength ?? bytes + RESERVATION_STEP_BYTES);
            return db.withTenant(bindingOf(ctx), (tx) => reserveUpTo(tx, orgId, fileId, Math.max(want, bytes), bytes, plan.quotaBytes, clock.now()));
          },
        });
        // Nothing may follow the file in the body.
        await source.end();
        if (got.content.archive === 'other') {
          throw new AppError('unsupported_media_type', 'this archive format cannot be inspected here: upload it as a zip');
        }
        if (got.content.archive === null && got.zipTail) {
          // A file of another type that also ends as a zip (a PNG with a zip appended, which
          // extractors open from its end): if it reads as one, it is inspected as one; if not, it
          // is what its head says.
          const appended = appendedZip(got.zipTail, got.size);
          if (appended) {
            const read = plainReader(store, key, fileKey, fileId, got.sealedBytes, got.size);
            await inspectZip({ size: got.size - appended.start, readAt: (o, l) => read(appended.start + o, l) }).catch((err: unknown) => {
              if (!(err instanceof AppError && err.detail?.startsWith('the archive cannot be read'))) throw err;
            });
          }
        }
        if (got.content.archive === 'zip') {
          // Before the scanner's outcome is looked at: the checks keep their order whatever clamd made of it.
          await inspectZip({ size: got.size, readAt: plainReader(store, key, fileKey, fileId, got.sealedBytes, got.size) });
        }
        if (got.scanFailure) throw got.scanFailure;
        if (got.verdict && !got.verdict.clean) throw new AppError('malware_detected', got.verdict.signature);
        return await db.withTenant(bindingOf(ctx), async (tx) => {
          const now = clock.now();
          const r = await one<FileRow>(
            tx,
            sql`update files set state = 'available', content_type = ${got.content.contentType}, active = ${got.content.active},
                  size_bytes = ${got.size}, reserved_bytes = ${got.size}, sha256 = ${got.sha256}, available_at = ${now}, touched_at = ${now}
                where org_id = ${orgId} and id = ${fileId} and state = 'receiving' returning ${COLUMNS}`,
          );
          if (!r) throw new AppError('not_found', 'the upload was cancelled: its project or reservation is gone');
          await audit.append(tx, orgId, ctx, {
            action: 'file.uploaded',
            target: { type: 'file', id: fileId },
            details: { projectId, name: checked.name, contentType: got.content.contentType, sizeBytes: got.size, sha256: got.sha256, scanned: got.verdict !== null },
          });
          return view(r);
        });
      } catch (err) {
        if (stored) await discard(ctx, orgId, fileId);
        let shown = err;
        if (err instanceof ScannerUnavailable) {
          deps.onScannerUnavailable(err.reason);
          deps.logger.error({ reqId: ctx.requestId, reason: err.reason }, 'malware scanner unavailable: upload refused');
          // Larger than clamd reads (its StreamMaxLength, below the plan's limit): retrying cannot help.
          shown = err.reason === 'size_limit'
            ? new AppError('payload_too_large', 'the file is larger than the malware scanner accepts; nothing was kept (the operator can raise clamd\u2019s StreamMaxLength)')
            : new AppError('scanner_unavailable', 'the malware scanner did not give a verdict; nothing was kept: try again later', undefined, { retryAfterSeconds: SCANNER_RETRY_SECONDS });
        }
        // The caller's own transport failures (a body cut short) are refusals too.
        if (shown instanceof AppError || err instanceof ScannerUnavailable) await refused(ctx, orgId, projectId, stored ? fileId : null, err, name);
        throw shown;
      } finally {
        release?.();
      }
    },

    /** The file's plaintext as a stream, with what the download's headers need. */
    async download(ctx: RequestContext, projectId: string, fileId: string): Promise<{ file: FileView; active: boolean; body: AsyncIterable<Buffer> }> {
      const org = requireOrg(ctx);
      const orgId = org.orgId;
      const { row, fileKey } = await db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await one<FileRow & { key_sealed: string }>(
          tx,
          sql`select ${COLUMNS}, key_sealed from files where org_id = ${orgId} and project_id = ${projectId} and id = ${fileId} and state = 'available'`,
        );
        if (!r) throw new AppError('not_found');
        const k = Buffer.from(await sealer.open(tx, fileKeyRef(orgId, fileId), r.key_sealed), 'base64');
        await audit.append(tx, orgId, ctx, { action: 'file.downloaded', target: { type: 'file', id: fileId }, details: { projectId, name: r.name } });
        return { row: r, fileKey: k };
      });
      const key: StoreKey = { orgId, fileId };
      const sealedBytes = await store.size(key);
      if (sealedBytes === null) throw new AppError('not_found');
      const size = Number(row.size_bytes);
      return {
        file: view(row),
        active: row.active,
        body: openRange((offset, length) => store.readAt(key, offset, length), fileKey, fileId, sealedBytes, 0, size),
      };
    },

    /** A project's allowlist of extensions (null: any the denylist admits); a denied type is never admitted. */
    async setExtensions(ctx: RequestContext, projectId: string, extensions: string[] | null): Promise<{ extensions: string[] | null }> {
      const org = requireOrg(ctx);
      const list = extensions === null ? null : [...new Set(extensions.map((e) => e.toLowerCase()))].sort();
      const denied = (list ?? []).filter((e) => DENIED_EXTENSIONS.has(e));
      if (denied.length > 0) {
        const why = `executable and script types cannot be allowed: ${denied.map((e) => `.${e}`).join(', ')}`;
        throw new AppError('validation_failed', why, [{ path: 'body.extensions', message: why }]);
      }
      return db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await one<{ id: string }>(tx, sql`update projects set file_extensions = ${list} where org_id = ${org.orgId} and id = ${projectId} returning id`);
        if (!r) throw new AppError('not_found');
        await audit.append(tx, org.orgId, ctx, { action: 'project.updated', target: { type: 'project', id: projectId }, details: { fileExtensions: list } });
        return { extensions: list };
      });
    },

    async remove(ctx: RequestContext, projectId: string, fileId: string): Promise<void> {
      const org = requireOrg(ctx);
      const orgId = org.orgId;
      await db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await one<{ name: string }>(tx, sql`delete from files where org_id = ${orgId} and project_id = ${projectId} and id = ${fileId} and state = 'available' returning name`);
        if (!r) throw new AppError('not_found');
        await audit.append(tx, orgId, ctx, { action: 'file.deleted', target: { type: 'file', id: fileId }, details: { projectId, name: r.name } });
      });
      // After the commit (the trigger recorded it): this file's bytes, and any a project's deletion left.
      await purgeGone(orgId);
    },
  };
}

export type FileService = ReturnType<typeof createFileService>;
