import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { PublishedKey } from './signing.js';
import { verifyArchiveStream } from './verify-stream.js';

/**
 * `palisade export verify ARCHIVE --keys KEYS`: what a recipient runs, offline, with no database
 * and no configuration: the archive (a downloaded tar) against the deployment's published JWK set
 * (GET /.well-known/palisade-export-keys, saved to a file), streamed in constant memory; the
 * operations guide shows the same with tar, sha256sum and openssl.
 * Exit 0 when the signature, every digest, size and row count hold; 1 naming each problem.
 */
export async function exportVerifyCommand(archive: string, keysFile: string, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const keys = (JSON.parse(await readFile(keysFile, 'utf8')) as { keys?: PublishedKey[] }).keys ?? [];
  const { manifest, problems } = await verifyArchiveStream(createReadStream(archive), keys);
  if (problems.length > 0 || !manifest) {
    for (const p of problems) err(`${p}\n`);
    return 1;
  }
  const rows = manifest.tables.reduce((n, t) => n + t.rows, 0);
  const files = manifest.tables.reduce((n, t) => n + t.files.length, 0);
  out(`verified: export ${manifest.exportId} of org ${manifest.orgId}, signed by key ${manifest.signature.kid}; ` +
    `${manifest.tables.length} tables, ${rows} rows in ${files} files, every digest matches\n`);
  return 0;
}
