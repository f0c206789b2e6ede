import type { Readable } from 'node:stream';
import { sha256Hasher, verifyDetached } from '../../crypto/index.js';
import { FORMAT } from './archive.js';
import type { PublishedKey } from './signing.js';
import { parseManifest, type Manifest } from './verify.js';

const BLOCK = 512;
const NEWLINE = 0x0a;
/** The entries kept in memory to check at the end, and how large they may be. */
const KEPT = new Set(['manifest.json', 'manifest.sig']);
const MANIFEST_MAX = 16 * 1024 * 1024;

interface Seen {
  sha256: string;
  bytes: number;
  lines: number;
}

/**
 * verifyArchive's checks over a stream, in constant memory: each entry is hashed, sized and its
 * lines counted as it passes (only the manifest and its signature are kept), and the manifest,
 * which comes last, is checked against what was seen. For archives of any size (the CLI).
 */
export async function verifyArchiveStream(input: Readable, keys: readonly PublishedKey[]): Promise<{ manifest: Manifest | null; problems: string[] }> {
  const seen = new Map<string, Seen>();
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
  if (!raw || !sig || twice.some((n) => KEPT.has(n))) return { manifest: null, problems: [...problems, 'manifest.json or manifest.sig is missing or repeated'] };
  const manifest = parseManifest(raw);
  if (!manifest) return { manifest: null, problems: [...problems, 'manifest.json is not a manifest'] };
  const key = keys.find((k) => k.kid === manifest.signature?.kid);
  if (!key) problems.push(`no published key ${manifest.signature?.kid}`);
  else if (!verifyDetached(key, raw, sig.toString('ascii').trim())) problems.push('the manifest signature does not verify');
  if (manifest.format !== FORMAT) problems.push(`unknown format ${manifest.format}`);
  const listed = new Set(['manifest.json', 'manifest.sig']);
  for (const t of manifest.tables) {
    for (const f of t.files) {
      listed.add(f.name);
      const s = seen.get(f.name);
      if (!s) problems.push(`${f.name} is missing`);
      else {
        if (s.sha256 !== f.sha256) problems.push(`${f.name}: digest differs`);
        if (s.bytes !== f.bytes) problems.push(`${f.name}: size differs`);
        if (s.lines !== f.rows) problems.push(`${f.name}: ${s.lines} rows, the manifest says ${f.rows}`);
      }
    }
    if (t.files.reduce((n, f) => n + f.rows, 0) !== t.rows) problems.push(`${t.name}: file rows do not add up to ${t.rows}`);
  }
  for (const name of seen.keys()) if (!listed.has(name)) problems.push(`${name} is not in the manifest`);
  return { manifest, problems };
}
