import { sha256Hex, verifyDetached } from '../../crypto/index.js';
import { FORMAT } from './archive.js';
import type { PublishedKey } from './signing.js';
import { tarEntries } from './tar.js';

export interface Manifest {
  format: string;
  exportId: string;
  orgId: string;
  signature: { alg: string; kid: string };
  tables: { name: string; rows: number; columns: string[]; excludedColumns: Record<string, string>; files: { name: string; rows: number; bytes: number; sha256: string }[] }[];
  excludedTables: Record<string, string>;
}

/** The manifest, or null when it is not JSON of the manifest's shape (a verifier reports, never crashes). */
export function parseManifest(raw: Buffer): Manifest | null {
  try {
    const m = JSON.parse(raw.toString('utf8')) as Partial<Manifest> | null;
    const shaped = !!m && typeof m === 'object' && typeof m.format === 'string' && Array.isArray(m.tables)
      && m.tables.every((t) => !!t && typeof t.name === 'string' && typeof t.rows === 'number' && Array.isArray(t.files)
        && t.files.every((f) => !!f && typeof f.name === 'string' && typeof f.rows === 'number' && typeof f.bytes === 'number' && typeof f.sha256 === 'string'));
    return shaped ? (m as Manifest) : null;
  } catch {
    return null;
  }
}

/**
 * What a recipient checks of an archive (held in memory: tests and small archives; the
 * operations guide does the same with tar, sha256sum and openssl): the manifest's signature
 * under a published key, then every file's digest, size and line count against the manifest,
 * and that the archive holds no file the manifest does not list. Returns the problems found.
 */
export function verifyArchive(archive: Buffer, keys: readonly PublishedKey[]): { manifest: Manifest | null; files: Map<string, Buffer>; problems: string[] } {
  const files = new Map<string, Buffer>();
  const problems: string[] = [];
  try {
    for (const e of tarEntries(archive)) {
      // A second entry of a name would be the one a reader of the stream sees first, or last.
      if (files.has(e.name)) problems.push(`${e.name} appears twice`);
      files.set(e.name, e.data);
    }
  } catch (err) {
    return { manifest: null, files, problems: [(err as Error).message] };
  }
  const seen = new Map<string, SeenEntry>();
  for (const [name, data] of files) seen.set(name, { sha256: sha256Hex(data), bytes: data.length, lines: data.reduce((n, b) => (b === 0x0a ? n + 1 : n), 0) });
  const checked = checkManifest(files.get('manifest.json'), files.get('manifest.sig'), keys, seen);
  return { manifest: checked.manifest, files, problems: [...problems, ...checked.problems] };
}

/** What an archive's entry was seen to hold: its digest, size and lines (one row each). */
export interface SeenEntry {
  sha256: string;
  bytes: number;
  lines: number;
}

/**
 * The checks both verifiers make once the entries are seen: the manifest's signature under a
 * published key, its format, every listed file's digest, size and rows, each table's total, and
 * no entry the manifest does not list.
 */
export function checkManifest(
  raw: Buffer | null | undefined, sig: Buffer | null | undefined, keys: readonly PublishedKey[], seen: ReadonlyMap<string, SeenEntry>,
): { manifest: Manifest | null; problems: string[] } {
  if (!raw || !sig) return { manifest: null, problems: ['manifest.json or manifest.sig is missing'] };
  const manifest = parseManifest(raw);
  if (!manifest) return { manifest: null, problems: ['manifest.json is not a manifest'] };
  const problems: string[] = [];
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
