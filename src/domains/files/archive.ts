import { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { AppError } from '../../kernel/errors.js';
import { checkFileName } from './names.js';

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
  // Held in memory while inspected, at each level: kept small (uploads run concurrently).
  maxNestedBytes: 16 * 1024 * 1024,
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

// eslint-disable-next-line no-control-regex -- control characters are what this replaces
const HIDDEN = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/gu;
// eslint-disable-next-line no-control-regex -- control characters are what this refuses
const BAD_NAME = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]|\\|^\/|^[a-zA-Z]:|(^|\/)\.\.(\/|$)/u;

/** What an entry's first bytes are: names lie (a zip named `payload.dat`, a program named `notes.txt`). */
type Sniffed = 'zip' | 'other-archive' | 'program' | null;

const SNIFF_BYTES = 264;

function sniff(head: Buffer): Sniffed {
  const at = (sig: number[], offset = 0) => sig.every((b, i) => head[offset + i] === b);
  if (at([0x50, 0x4b, 0x03, 0x04]) || at([0x50, 0x4b, 0x05, 0x06]) || at([0x50, 0x4b, 0x07, 0x08])) return 'zip';
  if (at([0x1f, 0x8b]) || at([0x42, 0x5a, 0x68]) || at([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) || at([0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])
    || at([0x52, 0x61, 0x72, 0x21]) || at([0x28, 0xb5, 0x2f, 0xfd]) || at([0x75, 0x73, 0x74, 0x61, 0x72], 257) || at([0x4d, 0x53, 0x43, 0x46])) return 'other-archive';
  if ((at([0x4d, 0x5a]) && head.length >= 64) || at([0x7f, 0x45, 0x4c, 0x46]) || at([0xcf, 0xfa, 0xed, 0xfe]) || at([0xce, 0xfa, 0xed, 0xfe])
    || at([0xfe, 0xed, 0xfa, 0xcf]) || at([0xfe, 0xed, 0xfa, 0xce]) || at([0x00, 0x61, 0x73, 0x6d])) return 'program';
  return null;
}

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
    const headers = new Set<number>();
    try {
      for await (const entry of zip.eachEntry()) {
        summary.entries++;
        if (summary.entries > limits.maxEntries) throw refuse(`the archive holds more than ${limits.maxEntries} entries`);
        checkEntryName(entry);
        if (entry.isEncrypted()) throw refuse(`${quoted(entry.fileName)} is encrypted: encrypted archives cannot be scanned`);
        summary.uncompressedBytes += entry.uncompressedSize;
        if (summary.uncompressedBytes > limits.maxTotalBytes) throw refuse(`the archive expands to more than ${limits.maxTotalBytes} bytes`);
        if (entry.uncompressedSize > limits.maxRatio * Math.max(entry.compressedSize, 1) && entry.uncompressedSize > 1024 * 1024) {
          throw refuse(`${quoted(entry.fileName)} expands more than ${limits.maxRatio} times (a compression bomb)`);
        }
        if (entry.compressedSize > 0) spans.push([entry.relativeOffsetOfLocalHeader, entry.relativeOffsetOfLocalHeader + entry.compressedSize]);
        if (headers.has(entry.relativeOffsetOfLocalHeader)) throw refuse('entries of the archive share their data (an overlapping-entry bomb)');
        headers.add(entry.relativeOffsetOfLocalHeader);
        await checkLocalHeader(source, entry);
        // Not by name: by what the entry's bytes are.
        const kind = entry.fileName.endsWith('/') || entry.uncompressedSize < 4 ? null : sniff(await headOf(zip, entry));
        if (kind === 'program') throw refuse(`the archive holds ${quoted(entry.fileName)}, which is a program`);
        if (kind === 'other-archive') throw refuse(`the archive holds ${quoted(entry.fileName)}, an archive of a format that cannot be inspected here`);
        if (kind === 'zip') nested.push(entry);
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
      if (entry.uncompressedSize > limits.maxNestedBytes) throw refuse(`${quoted(entry.fileName)} is too large to be inspected as a nested archive`);
      summary.nestedArchives++;
      const inner = await inflate(zip, entry, limits.maxNestedBytes);
      await inspect({ size: inner.length, readAt: (o, l) => Promise.resolve(inner.subarray(o, o + l)) }, limits, depth + 1, summary);
    }
  } finally {
    zip.close();
  }
}

/**
 * An entry's name, as every extractor may read it: the central directory's name (what yauzl
 * reports, from the Info-ZIP Unicode Path field when there is one) and the raw bytes beside it
 * must agree, and each part of the path must pass the upload name check (no trailing dot or
 * space, no `:` stream, no device name, no executable or server-script type).
 */
function checkEntryName(entry: yauzl.Entry): void {
  const name = entry.fileName;
  if (BAD_NAME.test(name)) throw refuse(`the archive holds an entry named ${quoted(name)}, outside its root or with hidden characters`);
  const utf8 = (entry.generalPurposeBitFlag & 0x800) !== 0;
  const raw = entry.fileNameRaw.toString(utf8 ? 'utf8' : 'latin1');
  if (raw !== name && entry.extraFields.some((f) => f.id === 0x7075)) {
    throw refuse(`the archive names an entry twice, differently (${quoted(raw)} and ${quoted(name)})`);
  }
  for (const part of name.split('/').filter((p) => p !== '')) {
    try {
      checkFileName(part);
    } catch (err) {
      const why = err instanceof AppError && err.detail ? err.detail : 'a name that is not accepted';
      throw refuse(`the archive holds ${quoted(name)}: ${why}`);
    }
  }
}

/** The local header's name must be the central directory's: streaming extractors read the local one. */
async function checkLocalHeader(source: RandomAccess, entry: yauzl.Entry): Promise<void> {
  const at = entry.relativeOffsetOfLocalHeader;
  const head = await source.readAt(at, Math.min(30, Math.max(0, source.size - at)));
  if (head.length < 30 || head.readUInt32LE(0) !== 0x04034b50) throw refuse(`the archive's entry ${quoted(entry.fileName)} has no local header`);
  const length = head.readUInt16LE(26);
  const local = await source.readAt(at + 30, Math.min(length, Math.max(0, source.size - at - 30)));
  if (!local.equals(entry.fileNameRaw)) throw refuse(`the archive names an entry differently in two places (${quoted(entry.fileName)})`);
}

/** The first bytes of an entry, inflated. */
async function headOf(zip: yauzl.ZipFile, entry: yauzl.Entry): Promise<Buffer> {
  try {
    const stream = await zip.openReadStreamPromise(entry);
    const parts: Buffer[] = [];
    let bytes = 0;
    try {
      for await (const chunk of stream) {
        parts.push(chunk as Buffer);
        bytes += (chunk as Buffer).length;
        if (bytes >= SNIFF_BYTES) break;
      }
    } finally {
      stream.destroy();
    }
    return Buffer.concat(parts).subarray(0, SNIFF_BYTES);
  } catch (err) {
    throw refuse(`${quoted(entry.fileName)} cannot be read: ${messageOf(err)}`);
  }
}

/** A name from the archive, as text that cannot break a log line, a problem or an audit event. */
function quoted(name: string): string {
  return JSON.stringify(name.slice(0, 100).replace(HIDDEN, '\ufffd'));
}

async function inflate(zip: yauzl.ZipFile, entry: yauzl.Entry, max: number): Promise<Buffer> {
  try {
    const stream = await zip.openReadStreamPromise(entry);
    const parts: Buffer[] = [];
    let bytes = 0;
    for await (const chunk of stream) {
      bytes += (chunk as Buffer).length;
      if (bytes > max) throw refuse(`${quoted(entry.fileName)} is too large to be inspected as a nested archive`);
      parts.push(chunk as Buffer);
    }
    return Buffer.concat(parts);
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw refuse(`${quoted(entry.fileName)} cannot be read: ${messageOf(err)}`);
  }
}

/** A library's message may quote what the archive holds: its hidden characters are replaced, and JSON escapes the rest. */
function messageOf(err: unknown): string {
  const text = (err instanceof Error ? err.message : 'unreadable').slice(0, 200).replace(HIDDEN, '\ufffd');
  return JSON.stringify(text).slice(1, -1);
}

function refuse(detail: string): AppError {
  return new AppError('unsupported_media_type', detail);
}

/**
 * Where a zip appended to another file starts: from its end-of-central-directory record (the
 * last one in `tail`, the file's last bytes), the directory's size and offset say how much
 * precedes the zip. Null when the record does not add up.
 */
export function appendedZip(tail: Buffer, size: number): { start: number } | null {
  const at = tail.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (at < 0 || at + 22 > tail.length) return null;
  const eocd = size - tail.length + at;
  const start = eocd - tail.readUInt32LE(at + 12) - tail.readUInt32LE(at + 16);
  return start >= 0 && start < eocd ? { start } : null;
}
