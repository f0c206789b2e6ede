import type { Readable } from 'node:stream';
import { sha256Hasher } from '../../crypto/index.js';
import type { PublishedKey } from './signing.js';
import { checkManifest, type Manifest, type SeenEntry } from './verify.js';

const BLOCK = 512;
const NEWLINE = 0x0a;
/** The entries kept in memory to check at the end, and how large they may be. */
const KEPT = new Set(['manifest.json', 'manifest.sig']);
const MANIFEST_MAX = 16 * 1024 * 1024;


/**
 * verifyArchive's checks over a stream, in constant memory: each entry is hashed, sized and its
 * lines counted as it passes (only the manifest and its signature are kept), and the manifest,
 * which comes last, is checked against what was seen. For archives of any size (the CLI).
 */
export async function verifyArchiveStream(input: Readable, keys: readonly PublishedKey[]): Promise<{ manifest: Manifest | null; problems: string[] }> {
  const seen = new Map<string, SeenEntry>();
  const kept = new Map<string, Buffer[]>();
  let buf: Buffer = Buffer.alloc(0);
  let entry: { name: string; left: number; pad: number; hash: ReturnType<typeof sha256Hasher>; size: number; lines: number } | null = null;
  let ended = false;
  let trailing = false;
  const twice: string[] = [];
  for await (const chunk of input as AsyncIterable<Buffer>) {
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    for (;;) {
      if (ended) {
        // Only zeros may follow the end marker: an entry hidden there is skipped here and extracted by `tar -i`.
        if (!buf.every((b) => b === 0)) trailing = true;
        buf = Buffer.alloc(0);
        break;
      }
      if (!entry) {
        if (buf.length < BLOCK) break;
        const h = buf.subarray(0, BLOCK);
        buf = buf.subarray(BLOCK);
        if (h.every((b) => b === 0)) {
          ended = true;
          break;
        }
        const name = h.subarray(0, 100).toString('ascii').replace(/\0.*$/s, '');
        const size = parseInt(h.subarray(124, 136).toString('ascii').replace(/\0.*$/s, '').trim(), 8);
        entry = { name, left: size, pad: (BLOCK - (size % BLOCK)) % BLOCK, hash: sha256Hasher(), size, lines: 0 };
        continue;
      }
      if (entry.left > 0) {
        if (buf.length === 0) break;
        const part = buf.subarray(0, Math.min(entry.left, buf.length));
        buf = buf.subarray(part.length);
        entry.left -= part.length;
        entry.hash.update(part);
        for (const b of part) if (b === NEWLINE) entry.lines++;
        if (KEPT.has(entry.name) && entry.size <= MANIFEST_MAX) kept.set(entry.name, [...(kept.get(entry.name) ?? []), Buffer.from(part)]);
        continue;
      }
      if (buf.length < entry.pad) break;
      buf = buf.subarray(entry.pad);
      if (seen.has(entry.name)) twice.push(entry.name);
      seen.set(entry.name, { sha256: entry.hash.hex(), bytes: entry.size, lines: entry.lines });
      entry = null;
    }
  }
  const raw = kept.has('manifest.json') ? Buffer.concat(kept.get('manifest.json') ?? []) : null;
  const sig = kept.has('manifest.sig') ? Buffer.concat(kept.get('manifest.sig') ?? []) : null;
  if (!ended || entry) return { manifest: null, problems: ['the archive is cut short'] };
  if (trailing) return { manifest: null, problems: ['data after the end of the archive'] };
  const problems: string[] = twice.map((name) => `${name} appears twice`);
  if (twice.some((n) => KEPT.has(n))) return { manifest: null, problems: [...problems, 'manifest.json or manifest.sig is repeated'] };
  const checked = checkManifest(raw, sig, keys, seen);
  return { manifest: checked.manifest, problems: [...problems, ...checked.problems] };
}
