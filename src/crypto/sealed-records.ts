import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';

/**
 * Streams encrypted at rest as a sequence of records, each AES-256-GCM under the stream's own key:
 * `u32 length | u8 final | 12-byte nonce | ciphertext | 16-byte tag`, the AAD binding a label
 * (what the stream is: an export archive, an uploaded file), the stream's id, the record's index
 * and the final flag. Reordering, splicing in another stream's record or cutting the stream short
 * fails: a record's tag, or the absence of a final record.
 *
 * Written sequentially (exports append batches of any size; files cut their bytes into records of
 * RECORD_PLAINTEXT), read sequentially (recordOpener) or, where every record but the last holds
 * the same amount, at any offset (openRange: a download's range, an archive's central directory).
 */

const HEAD = 5;
const NONCE = 12;
const TAG = 16;
/** Bytes a record adds to its plaintext. */
export const RECORD_OVERHEAD = HEAD + NONCE + TAG;
/** Plaintext per record of a file (every record but the last holds exactly this much). */
export const RECORD_PLAINTEXT = 64 * 1024;
const MAX_RECORD = 64 * 1024 * 1024;

export type RecordLabel = 'palisade-export/v1' | 'palisade-file/v1';

const aadOf = (label: RecordLabel, id: string, index: number, final: boolean) => Buffer.from(`${label}/${id}/${index}/${final ? 1 : 0}`);

export function sealRecord(label: RecordLabel, key: Buffer, id: string, index: number, final: boolean, plaintext: Buffer): Buffer {
  const nonce = randomBytes(NONCE);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(aadOf(label, id, index, final));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  const head = Buffer.alloc(HEAD);
  head.writeUInt32BE(NONCE + body.length + TAG, 0);
  head.writeUInt8(final ? 1 : 0, 4);
  return Buffer.concat([head, nonce, body, cipher.getAuthTag()]);
}

/** One whole record (its head included) at `index`; throws unless it is exactly that record of that stream. */
function openRecord(label: RecordLabel, key: Buffer, id: string, index: number, record: Buffer, final: boolean): Buffer {
  if (record.length < RECORD_OVERHEAD) throw new Error('sealed record is truncated');
  const len = record.readUInt32BE(0);
  if (len !== record.length - HEAD || record.readUInt8(4) !== (final ? 1 : 0)) throw new Error('sealed record is out of place');
  const decipher = createDecipheriv('aes-256-gcm', key, record.subarray(HEAD, HEAD + NONCE));
  decipher.setAAD(aadOf(label, id, index, final));
  decipher.setAuthTag(record.subarray(record.length - TAG));
  return Buffer.concat([decipher.update(record.subarray(HEAD + NONCE, record.length - TAG)), decipher.final()]);
}

/** Streams the plaintext out of a sealed stream's records; fails on any altered, missing or trailing record. */
export function recordOpener(label: RecordLabel, key: Buffer, id: string): Transform {
  let pending: Buffer = Buffer.alloc(0);
  let index = 0;
  let ended = false;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      try {
        while (pending.length >= HEAD) {
          const len = pending.readUInt32BE(0);
          if (len < NONCE + TAG || len > MAX_RECORD) throw new Error('sealed record of an impossible length');
          if (pending.length < HEAD + len) break;
          if (ended) throw new Error('sealed stream has records after its final one');
          const final = pending.readUInt8(4) === 1;
          this.push(openRecord(label, key, id, index, pending.subarray(0, HEAD + len), final));
          pending = pending.subarray(HEAD + len);
          index++;
          ended = final;
        }
        done();
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      done(pending.length > 0 || !ended ? new Error('sealed stream is truncated') : null);
    },
  });
}

/**
 * Seals a file's bytes as they stream past, in records of RECORD_PLAINTEXT; the last record (it
 * may be empty) is final. `sealedLengthOf(n)` is what n bytes of plaintext take.
 */
export function fileSealer(key: Buffer, fileId: string): Transform {
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let index = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      pending.push(chunk);
      pendingBytes += chunk.length;
      // Strictly more than a record's worth: the record that ends the file must be the final one.
      while (pendingBytes > RECORD_PLAINTEXT) {
        const all = Buffer.concat(pending);
        this.push(sealRecord('palisade-file/v1', key, fileId, index++, false, all.subarray(0, RECORD_PLAINTEXT)));
        const rest = all.subarray(RECORD_PLAINTEXT);
        pending = [rest];
        pendingBytes = rest.length;
      }
      done();
    },
    flush(done: TransformCallback) {
      this.push(sealRecord('palisade-file/v1', key, fileId, index, true, Buffer.concat(pending)));
      pending = [];
      done();
    },
  });
}

export function sealedLengthOf(plaintextBytes: number): number {
  const records = Math.max(1, Math.ceil(plaintextBytes / RECORD_PLAINTEXT));
  return plaintextBytes + records * RECORD_OVERHEAD;
}

/** A file's plaintext length from its sealed length; null when no file seals to that length. */
export function plaintextLengthOf(sealedBytes: number): number | null {
  const full = RECORD_PLAINTEXT + RECORD_OVERHEAD;
  const records = Math.max(1, Math.ceil(sealedBytes / full));
  const plain = sealedBytes - records * RECORD_OVERHEAD;
  return plain >= 0 && sealedLengthOf(plain) === sealedBytes ? plain : null;
}

/**
 * Bytes [start, end) of a sealed file's plaintext, opening only the records that hold them.
 * `readAt(offset, length)` reads the sealed bytes (from disk, from S3 with a Range); `sealedBytes`
 * is the sealed file's length as stored, which tells which record is the final one: a file cut
 * at a record boundary has a last record that was not sealed as final, and fails.
 */
export async function* openRange(
  readAt: (offset: number, length: number) => Promise<Buffer>,
  key: Buffer,
  fileId: string,
  sealedBytes: number,
  start: number,
  end: number,
): AsyncIterable<Buffer> {
  const size = plaintextLengthOf(sealedBytes);
  if (size === null) throw new Error('sealed file has an impossible length');
  if (start < 0 || end > size || start > end) throw new RangeError('range outside the file');
  const full = RECORD_PLAINTEXT + RECORD_OVERHEAD;
  const last = Math.max(0, Math.ceil(size / RECORD_PLAINTEXT) - 1);
  const first = Math.floor(start / RECORD_PLAINTEXT);
  const stop = end === start ? first : Math.floor((end - 1) / RECORD_PLAINTEXT);
  for (let i = first; i <= Math.min(stop, last); i++) {
    const offset = i * full;
    const length = i === last ? sealedBytes - offset : full;
    const plain = openRecord('palisade-file/v1', key, fileId, i, await readAt(offset, length), i === last);
    const from = i === first ? start - i * RECORD_PLAINTEXT : 0;
    const to = Math.min(plain.length, end - i * RECORD_PLAINTEXT);
    if (to > from) yield plain.subarray(from, to);
  }
}
