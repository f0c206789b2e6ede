import { sql } from 'kysely';
import { exec, one, type Tx } from '../../db/database.js';
import { AppError } from '../../kernel/errors.js';

/**
 * An org's bytes against its plan's quota (migration 041). A file being received holds a
 * reservation (its row's reserved_bytes) that grows ahead of the stream; a trigger keeps the
 * org's total in org_file_usage and locks that row until the transaction ends, so two uploads
 * of one org reserve one after the other and the second sees the first's bytes before checking.
 * A refused or broken-off upload deletes its row, which releases its bytes.
 */

/** How far a reservation runs ahead of the bytes received when the request's length is unknown (one transaction per step). */
export const RESERVATION_STEP_BYTES = 8 * 1024 * 1024;

/** A row left `receiving` this long without a reservation is a crashed process's: swept. */
export const STALE_RECEIVING_MS = 60 * 60 * 1000;

export function quotaProblem(quotaBytes: number): AppError {
  return new AppError('quota_exceeded', `the organization's files may take ${quotaBytes} bytes in all (its plan's quota), uploads in progress included`);
}

/** Throws quota_exceeded (rolling the caller's transaction back) when the org is over `quotaBytes`. */
export async function assertWithinQuota(tx: Tx, orgId: string, quotaBytes: number): Promise<void> {
  const usage = await one<{ bytes: string }>(tx, sql`select bytes::text as bytes from org_file_usage where org_id = ${orgId}`);
  if (usage && Number(usage.bytes) > quotaBytes) throw quotaProblem(quotaBytes);
}

/**
 * Grows a receiving file's reservation toward `want` bytes, as far as the quota allows, and at
 * least to `need` (the bytes already received) or throws quota_exceeded. The org's usage row is
 * locked first, so reservations of one org are serialised and each sees the others' bytes; near
 * the quota the file gets exactly what is left, in one transaction, rather than one per chunk
 * (attacker review, finding 6). Returns the reservation.
 */
export async function reserveUpTo(tx: Tx, orgId: string, fileId: string, want: number, need: number, quotaBytes: number, now: Date): Promise<number> {
  const usage = await one<{ bytes: string }>(tx, sql`select bytes::text as bytes from org_file_usage where org_id = ${orgId} for update`);
  const file = await one<{ reserved: string }>(tx, sql`select reserved_bytes::text as reserved from files where org_id = ${orgId} and id = ${fileId} and state = 'receiving' for update`);
  // The row went: swept as stale, or its project deleted while the bytes streamed.
  if (!file) throw new AppError('not_found', 'the upload was cancelled: its project or reservation is gone');
  const mine = Number(file.reserved);
  const available = quotaBytes - (Number(usage?.bytes ?? 0) - mine);
  const next = Math.max(mine, Math.min(want, available));
  if (next < need) throw quotaProblem(quotaBytes);
  if (next !== mine) await exec(tx, sql`update files set reserved_bytes = ${next}, touched_at = ${now} where org_id = ${orgId} and id = ${fileId}`);
  return next;
}

/** The org's usage row, so that reservations have a row to lock from their first byte. */
export async function ensureUsageRow(tx: Tx, orgId: string): Promise<void> {
  await exec(tx, sql`insert into org_file_usage (org_id, bytes) values (${orgId}, 0) on conflict (org_id) do nothing`);
}

export async function usedBytes(tx: Tx, orgId: string): Promise<number> {
  const usage = await one<{ bytes: string }>(tx, sql`select bytes::text as bytes from org_file_usage where org_id = ${orgId}`);
  return usage ? Number(usage.bytes) : 0;
}

/** Deletes the org's receiving rows no process has moved on for STALE_RECEIVING_MS (their bytes go through files_gone); returns how many. */
export async function sweepStale(tx: Tx, orgId: string, now: Date): Promise<number> {
  const before = new Date(now.getTime() - STALE_RECEIVING_MS);
  return exec(tx, sql`delete from files where org_id = ${orgId} and state = 'receiving' and touched_at < ${before}`);
}

/** A size as people read it: `25 MiB (26214400 bytes)`. */
export function sizeText(bytes: number): string {
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let unit = 'bytes';
  for (const u of units) {
    if (v < 1024) break;
    v /= 1024;
    unit = u;
  }
  return unit === 'bytes' ? `${bytes} bytes` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${unit} (${bytes} bytes)`;
}
