import { once } from 'node:events';
import { PassThrough, Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileSealer, sha256Hasher } from '../../crypto/index.js';
import { AppError } from '../../kernel/errors.js';
import { checkContent, HEAD_BYTES, type CheckedContent } from './content.js';
import type { Scanner, ScanVerdict } from './clamd.js';
import type { FileStore, StoreKey } from './storage.js';

/**
 * One upload's bytes, in one pass as they arrive (issue 16): counted against the reservation
 * (grown ahead of them), the head checked against the name and declared type before more than
 * HEAD_BYTES are accepted, hashed, streamed to clamd and, sealed in records under the file's own
 * key, to the file store. Backpressure runs end to end: a slow scanner or store slows the upload,
 * nothing piles up in memory. The first failure stops every branch; the caller deletes what
 * the store may hold and the row.
 */
export interface ReceiveInput {
  source: Readable;
  extension: string;
  declaredType: string;
  key: Buffer;
  fileId: string;
  storeKey: StoreKey;
  store: FileStore;
  /** null: the development opt-out (PALISADE_UPLOADS_UNSCANNED). */
  scanner: Scanner | null;
  /** Bytes reserved before the first byte. */
  reserved: number;
  /** Grows the reservation to at least `bytes` (throws quota_exceeded). */
  grow(bytes: number): Promise<number>;
}

export interface Received {
  size: number;
  sha256: string;
  content: CheckedContent;
  sealedBytes: number;
  /** null when not scanned (the opt-out), or when the scanner failed (`scanFailure`). */
  verdict: ScanVerdict | null;
  /** The file's last bytes when they hold a zip's end-of-central-directory record (a polyglot is inspected as a zip); else null. */
  zipTail: Buffer | null;
  /**
   * The scanner gave no verdict, though every byte arrived: the caller runs the checks that come
   * before the scan in the order (the archive), so that a zip bomb is refused as one even
   * when clamd times out on it, and only then refuses the upload for want of a verdict.
   */
  scanFailure: unknown;
}

export async function receive(input: ReceiveInput): Promise<Received> {
  const hasher = sha256Hasher();
  let size = 0;
  let reserved = input.reserved;
  let head: Buffer[] = [];
  let headBytes = 0;
  let content: CheckedContent | null = null;
  const toScanner = input.scanner ? new PassThrough({ highWaterMark: 256 * 1024 }) : null;
  // Destroyed with the upload's failure, maybe before the scanner reads from it: the scan sees the error.
  toScanner?.on('error', () => undefined);
  const scanning = input.scanner && toScanner ? input.scanner.scan(toScanner) : null;
  // clamd may stop reading before the end: it failed, or it refused the stream (its size limit).
  // From then on nothing more is written to it, and a failure stops the upload at once.
  let scanSettled = false;
  let scanError: unknown = null;
  const scanEnded = scanning?.then(
    () => void (scanSettled = true),
    (err: unknown) => {
      scanSettled = true;
      scanError = err;
    },
  );

  // Text must be text to its end, not only in its head (attacker review, finding 7): every byte
  // goes through a strict UTF-8 decoder, and a NUL anywhere fails it.
  const utf8 = new TextDecoder('utf-8', { fatal: true });
  let notText = false;
  const textCheck = (chunk: Buffer | null) => {
    if (notText) return;
    try {
      if (chunk) {
        if (chunk.includes(0)) notText = true;
        else utf8.decode(chunk, { stream: true });
      } else utf8.decode();
    } catch {
      notText = true;
    }
  };
  const refuseNotText = () => {
    if (content?.text && notText) throw new AppError('unsupported_media_type', `a .${input.extension} file must be UTF-8 text to its end`);
  };
  // The last bytes, for a zip's end record (a PNG with a zip appended is both).
  const tail: Buffer[] = [];
  let tailBytes = 0;
  const TAIL = 64 * 1024 + 22;

  const checkHead = async (final: boolean) => {
    if (content || (!final && headBytes < HEAD_BYTES)) return;
    const all = Buffer.concat(head);
    content = await checkContent(all.subarray(0, HEAD_BYTES), input.extension, input.declaredType);
    head = [];
  };

  const meter = new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      void (async () => {
        size += chunk.length;
        if (size > reserved) reserved = await input.grow(size);
        if (!content) {
          head.push(chunk);
          headBytes += chunk.length;
          await checkHead(false);
        }
        hasher.update(chunk);
        textCheck(chunk);
        refuseNotText();
        tail.push(chunk);
        tailBytes += chunk.length;
        while (tail.length > 1 && tailBytes - (tail[0]?.length ?? 0) >= TAIL) tailBytes -= tail.shift()?.length ?? 0;
        if (scanError) throw scanError;
        if (toScanner && !scanSettled && !toScanner.write(chunk)) await Promise.race([once(toScanner, 'drain'), scanEnded]);
        if (scanError) throw scanError;
      })().then(() => done(null, chunk), (err: unknown) => done(err as Error));
    },
    flush(done: TransformCallback) {
      checkHead(true).then(() => {
        textCheck(null);
        refuseNotText();
        toScanner?.end();
        done();
      }, (err: unknown) => done(err as Error));
    },
  });

  const sealed = new PassThrough();
  const piping = pipeline(input.source, meter, fileSealer(input.key, input.fileId), sealed);
  const putting = input.store.put(input.storeKey, sealed);
  // An upload that fails ends the scanner's stream too, or the scan would wait for bytes forever.
  piping.catch((err: unknown) => toScanner?.destroy(err as Error));
  const [piped, put, scanned] = await Promise.allSettled([piping, putting, scanning ?? Promise.resolve(null)]);
  if (piped.status === 'rejected') throw piped.reason;
  if (put.status === 'rejected') throw scanned.status === 'rejected' ? scanned.reason : put.reason;
  if (!content) throw new Error('the content check did not run');
  const scanFailure: unknown = scanned.status === 'rejected' ? scanned.reason : null;
  const last = Buffer.concat(tail).subarray(-TAIL);
  const zipTail = last.includes(Buffer.from([0x50, 0x4b, 0x05, 0x06])) ? last : null;
  return { size, sha256: hasher.hex(), content, sealedBytes: put.value, verdict: scanned.status === 'fulfilled' ? scanned.value : null, scanFailure, zipTail };
}
