import multipart from '@fastify/multipart';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { finished, PassThrough, type Readable } from 'node:stream';
import { AppError } from '../kernel/errors.js';

/**
 * The body of an upload route (issue 16): multipart/form-data holding exactly one file part,
 * handed to the handler as a stream as it arrives, never buffered whole. Anything else in the body
 * (a field, a part without a file name, a second file) is refused, and so is a body that ends
 * before its closing boundary; a file over its size limit fails while it streams.
 */
export interface UploadedFile {
  /** The file name the client sent (unchecked: the domain checks it). */
  fileName: string;
  /** The content type the client declared for the part (unchecked). */
  declaredType: string;
  /** The file's bytes. Fails with payload_too_large past `maxBytes`, malformed_request when the body is cut. */
  stream: Readable;
}

export interface UploadSource {
  /** The request's Content-Length, when it sent one: a first, cheap size check. */
  readonly declaredLength: number | null;
  /**
   * The one file part, of at most `maxBytes` (`limit` says it in words for the refusal); refuses
   * a body that starts with anything else, and one whose Content-Length alone is past the limit.
   */
  file(maxBytes: number, limit: string): Promise<UploadedFile>;
  /** After the file's stream has been read to its end: resolves only when nothing followed it. */
  end(): Promise<void>;
}

/** After `graceSeconds`, an upload must have kept an average of `minBytesPerSecond`. */
export interface UploadPace {
  graceSeconds: number;
  minBytesPerSecond: number;
}

export const DEFAULT_UPLOAD_PACE: UploadPace = { graceSeconds: 30, minBytesPerSecond: 16 * 1024 };

/** Multipart framing allowed around the file: headers, boundaries, a long file name. */
export const MULTIPART_OVERHEAD_BYTES = 16 * 1024;

const ONE_FILE = 'send the file as the only part of a multipart/form-data body, with a file name (curl -F file=@report.pdf)';

/** Registers the multipart parser in an upload route's own context (no other body type is read there). */
export async function acceptUploads(app: FastifyInstance): Promise<void> {
  app.removeAllContentTypeParsers();
  await app.register(multipart, { throwFileSizeLimit: true });
  // Any other body is left unread for the handler to refuse (415) once the caller is known: an
  // anonymous caller is told to sign in first, as on every other route.
  app.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
}

interface Part {
  type: 'file' | 'field';
  filename?: string;
  mimetype?: string;
  file?: Readable & { truncated?: boolean };
}

export function uploadSource(request: FastifyRequest, pace: UploadPace = DEFAULT_UPLOAD_PACE): UploadSource {
  const length = Number(request.headers['content-length']);
  const declaredLength = Number.isSafeInteger(length) && length >= 0 ? length : null;
  let iterator: AsyncIterator<Part> | null = null;
  const next = async (): Promise<Part | null> => {
    try {
      const r = await (iterator as AsyncIterator<Part>).next();
      return r.done ? null : r.value;
    } catch (err) {
      throw multipartProblem(err);
    }
  };
  // Anything but multipart is refused before the domain does any work.
  if (!request.isMultipart()) throw new AppError('unsupported_media_type', ONE_FILE);
  return {
    declaredLength,
    async file(maxBytes, limit) {
      const tooLarge = () => new AppError('payload_too_large', `a file is limited to ${limit} here`);
      if (declaredLength !== null && declaredLength > maxBytes + MULTIPART_OVERHEAD_BYTES) throw tooLarge();
      const parts = request.parts({
        // preservePath: the name as sent, so that a path in it is refused rather than quietly cut off.
        preservePath: true,
        limits: { files: 1, fields: 0, parts: 1, fileSize: maxBytes, headerPairs: 20, fieldNameSize: 100, fieldSize: 1 },
      }) as AsyncIterableIterator<Part>;
      iterator = parts[Symbol.asyncIterator]();
      const part = await next();
      if (!part || part.type !== 'file' || !part.file || !part.filename) throw new AppError('validation_failed', ONE_FILE, [{ path: 'file', message: ONE_FILE }]);
      const raw = part.file;
      // What the handler reads: the part's bytes, failing with a closed code whatever went wrong
      // in the body. busboy parses ahead: by the time the part is handed over it may already have
      // failed (a body cut short) or been cut at its limit, so its state is read, not only its events.
      const stream = new PassThrough();
      // Its failure may come before the handler reads it (the handler checks the name first): the
      // reader sees it then (a pipeline over an errored stream fails with its error), not the process.
      stream.on('error', () => undefined);
      raw.once('limit', () => stream.destroy(tooLarge()));
      finished(raw, (err) => {
        if (err) stream.destroy(multipartProblem(raw.errored ?? err));
        else if (raw.truncated) stream.destroy(tooLarge());
        else stream.end();
      });
      stream.on('close', () => {
        if (!raw.readableEnded) raw.resume();
      });
      raw.pipe(stream, { end: false });
      // A client trickling bytes holds a clamd slot (and a connection) for as long as it likes:
      // after a grace period an upload must keep an average pace (attacker review, finding 2).
      const started = Date.now();
      let received = 0;
      raw.on('data', (b: Buffer) => (received += b.length));
      const pacer = setInterval(() => {
        const seconds = (Date.now() - started) / 1000;
        if (seconds > pace.graceSeconds && received < seconds * pace.minBytesPerSecond) {
          stream.destroy(new AppError('malformed_request', `the upload was slower than ${pace.minBytesPerSecond} bytes/s on average and was stopped`));
        }
      }, Math.min(1000, pace.graceSeconds * 500));
      pacer.unref();
      stream.once('close', () => clearInterval(pacer));
      return { fileName: sentName(part.filename), declaredType: part.mimetype ?? '', stream };
    },
    async end() {
      if (!iterator) throw new AppError('validation_failed', ONE_FILE);
      if ((await next()) !== null) throw new AppError('validation_failed', ONE_FILE);
    },
  };
}

/**
 * The file name as the user chose it: browsers (the HTML standard) and curl send `"`, CR and LF
 * in a multipart file name as %22, %0D and %0A, and busboy does not undo it. Undone here, so the
 * name check sees, and refuses, what the user typed; nothing else is decoded.
 */
function sentName(raw: string): string {
  return raw.replace(/%(22|0D|0A)/gi, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** @fastify/multipart's and busboy's errors as the closed codes. */
export function multipartProblem(err: unknown): AppError {
  if (err instanceof AppError) return err;
  const code = (err as { code?: unknown }).code;
  switch (code) {
    case 'FST_REQ_FILE_TOO_LARGE':
      return new AppError('payload_too_large');
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
    case 'FST_PARTS_LIMIT':
    case 'FST_PROTO_VIOLATION':
      return new AppError('validation_failed', ONE_FILE, [{ path: 'file', message: ONE_FILE }]);
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new AppError('unsupported_media_type', ONE_FILE);
    default:
      // A body cut short, a boundary missing, a malformed part header.
      return new AppError('malformed_request', 'the multipart body could not be read to its end');
  }
}
