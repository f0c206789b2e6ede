import { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { AppError } from '../../kernel/errors.js';
import { DENIED_EXTENSIONS } from './names.js';

/**
 * What a zip may hold (issue 16, check 4 of 5), read from its central directory without extracting
 * anything to disk: the archive is opened through `readAt` (for a stored file, its sealed records,
 * opened by range), and only a nested archive is inflated, into memory, within the limits.
 *
 * Refused: more entries than `maxEntries`; a total declared size above `maxTotalBytes` (all
 * nesting levels together); an entry whose declared size is more than `maxRatio` times its
 * compressed size (42.zip-style bombs); entries whose data overlap (the "better zip bomb": one
 * compressed kernel shared by thousands of entries); an entry name that leaves the archive's
 * root (zip-slip: `../`, an absolute path, a drive letter, a backslash), holds control or
 * direction-changing characters, or names an executable or script type; an encrypted entry
 * (the scanner cannot look inside); archives nested deeper than `maxDepth`. yauzl checks that
 * each inflated entry is exactly its declared size, so the declared sizes are the real ones.
 */

export interface ArchiveLimits {
  maxEntries: number;
  maxTotalBytes: number;
  maxRatio: number;
  maxDepth: number;
  /** Largest nested archive inflated into memory to be inspected in turn. */
  maxNestedBytes: number;
}

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = {
  maxEntries: 5_000,
  maxTotalBytes: 1024 * 1024 * 1024,
  maxRatio: 100,
  maxDepth: 3,
  maxNestedBytes: 32 * 1024 * 1024,
};

export interface RandomAccess {
  size: number;
  readAt(offset: number, length: number): Promise<Buffer>;
}

export interface ArchiveSummary {
  /** Entries at every level, directories included. */
  entries: number;
  /** Declared (and, for what was inflated, checked) uncompressed bytes at every level. */
  uncompressedBytes: number;
  nestedArchives: number;
}

class RangeReader extends yauzl.RandomAccessReader {
  constructor(private readonly source: RandomAccess) {
    super();
  }

  override _readStreamForRange(start: number, end: number): Readable {
    const { source } = this;
    return Readable.from(
      (async function* () {
        if (end > start) yield await source.readAt(start, end - start);
      })(),
    );
  }
}

// eslint-disable-next-line no-control-regex -- control characters are what this refuses
const BAD_NAME = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]|\\|^\/|^[a-zA-Z]:|(^|\/)\.\.(\/|$)/u;
const NESTED = /\.(zip|jar|docx|xlsx|pptx|odt|ods|odp|epub)$/i;

export async function inspectZip(source: RandomAccess, limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS): Promise<ArchiveSummary> {
  const summary: ArchiveSummary = { entries: 0, uncompressedBytes: 0, nestedArchives: 0 };
  await inspect(source, limits, 0, summary);
  return summary;
}

async function inspect(source: RandomAccess, limits: ArchiveLimits, depth: number, summary: ArchiveSummary): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await yauzl.fromRandomAccessReaderPromise(new RangeReader(source), source.size, { lazyEntries: true, validateEntrySizes: true, strictFileNames: true, autoClose: false });
  } catch (err) {
    throw refuse(`the archive cannot be read: ${messageOf(err)}`);
  }
  try {
    if (summary.entries + zip.entryCount > limits.maxEntries) throw refuse(`the archive holds more than ${limits.maxEntries} entries`);
    const spans: [number, number][] = [];
    const nested: yauzl.Entry[] = [];
    try {
      for await (const entry of zip.eachEntry()) {
        summary.entries++;
        if (summary.entries > limits.maxEntries) throw refuse(`the archive holds more than ${limits.maxEntries} entries`);
        checkEntryName(entry.fileName);
        if (entry.isEncrypted()) throw refuse(`${entry.fileName} is encrypted: encrypted archives cannot be scanned`);
        summary.uncompressedBytes += entry.uncompressedSize;
        if (summary.uncompressedBytes > limits.maxTotalBytes) throw refuse(`the archive expands to more than ${limits.maxTotalBytes} bytes`);
        if (entry.uncompressedSize > limits.maxRatio * Math.max(entry.compressedSize, 1) && entry.uncompressedSize > 1024 * 1024) {
          throw refuse(`${entry.fileName} expands more than ${limits.maxRatio} times (a compression bomb)`);
        }
        if (entry.compressedSize > 0) spans.push([entry.relativeOffsetOfLocalHeader, entry.relativeOffsetOfLocalHeader + entry.compressedSize]);
        if (NESTED.test(entry.fileName)) nested.push(entry);
      }
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw refuse(`the archive cannot be read: ${messageOf(err)}`);
    }
    spans.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < spans.length; i++) {
      if ((spans[i]?.[0] ?? 0) < (spans[i - 1]?.[1] ?? 0)) throw refuse('entries of the archive share their data (an overlapping-entry bomb)');
    }
    for (const entry of nested) {
      if (depth + 1 > limits.maxDepth) throw refuse(`archives are nested more than ${limits.maxDepth} deep`);
      if (entry.uncompressedSize > limits.maxNestedBytes) throw refuse(`${entry.fileName} is too large to be inspected as a nested archive`);
      summary.nestedArchives++;
      const inner = await inflate(zip, entry, limits.maxNestedBytes);
      await inspect({ size: inner.length, readAt: (o, l) => Promise.resolve(inner.subarray(o, o + l)) }, limits, depth + 1, summary);
    }
  } finally {
    zip.close();
  }
}

function checkEntryName(name: string): void {
  if (BAD_NAME.test(name)) throw refuse(`the archive holds an entry named ${JSON.stringify(name.slice(0, 100))}, outside its root or with hidden characters`);
  const base = name.endsWith('/') ? '' : (name.split('/').pop() ?? '');
  const dot = base.lastIndexOf('.');
  const extension = dot > 0 ? base.slice(dot + 1).toLowerCase() : '';
  if (DENIED_EXTENSIONS.has(extension)) throw refuse(`the archive holds ${JSON.stringify(base.slice(0, 100))}: .${extension} files are not accepted`);
}

async function inflate(zip: yauzl.ZipFile, entry: yauzl.Entry, max: number): Promise<Buffer> {
  try {
    const stream = await zip.openReadStreamPromise(entry);
    const parts: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of stream) {
      bytes += (chunk as Buffer).length;
      if (bytes > max) throw refuse(`${entry.fileName} is too large to be inspected as a nested archive`);
      parts.push(chunk as Buffer);
    }
    return Buffer.concat(parts);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw refuse(`${entry.fileName} cannot be read: ${messageOf(err)}`);
  }
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : 'unreadable').slice(0, 200);
}

function refuse(detail: string): AppError {
  return new AppError('unsupported_media_type', detail);
}
