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
  const raw = files.get('manifest.json');
  const sig = files.get('manifest.sig');
  if (!raw || !sig) return { manifest: null, files, problems: ['manifest.json or manifest.sig is missing'] };
  const manifest = parseManifest(raw);
  if (!manifest) return { manifest: null, files, problems: [...problems, 'manifest.json is not a manifest'] };
  const key = keys.find((k) => k.kid === manifest.signature?.kid);
  if (!key) problems.push(`no published key ${manifest.signature?.kid}`);
  else if (!verifyDetached(key, raw, sig.toString('ascii').trim())) problems.push('the manifest signature does not verify');
  if (manifest.format !== FORMAT) problems.push(`unknown format ${manifest.format}`);
  const listed = new Set(['manifest.json', 'manifest.sig']);
  for (const t of manifest.tables) {
    for (const f of t.files) {
      listed.add(f.name);
      const data = files.get(f.name);
      if (!data) {
        problems.push(`${f.name} is missing`);
        continue;
      }
      if (sha256Hex(data) !== f.sha256) problems.push(`${f.name}: digest differs`);
      if (data.length !== f.bytes) problems.push(`${f.name}: size differs`);
      const lines = data.toString('utf8').split('\n').filter((l) => l.length > 0).length;
      if (lines !== f.rows) problems.push(`${f.name}: ${lines} rows, the manifest says ${f.rows}`);
    }
    if (t.files.reduce((n, f) => n + f.rows, 0) !== t.rows) problems.push(`${t.name}: file rows do not add up to ${t.rows}`);
  }
  for (const name of files.keys()) if (!listed.has(name)) problems.push(`${name} is not in the manifest`);
  return { manifest, files, problems };
}
