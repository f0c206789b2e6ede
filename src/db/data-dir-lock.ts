import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * PGlite is one process per data directory: a second process (a second server, or a CLI command
 * while the server runs) reads a stale copy and its writes are lost. The directory is claimed
 * with a pid file created exclusively; a file left by a process that is gone is taken over.
 * Returns the release function.
 */
export function lockDataDir(dir: string): () => void {
  const file = join(dir, 'palisade.pid');
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      writeFileSync(file, String(process.pid), { flag: 'wx', mode: 0o600 });
      return () => {
        try {
          if (readFileSync(file, 'utf8').trim() === String(process.pid)) unlinkSync(file);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder: number;
    try {
      holder = Number(readFileSync(file, 'utf8').trim());
    } catch {
      continue; // released meanwhile: try again
    }
    if (Number.isInteger(holder) && holder > 0 && isAlive(holder)) {
      throw new Error(
        `the embedded database in ${dir} is in use by process ${holder}: stop it first (PGlite allows one process per data directory; ` +
          'use DATABASE_URL for a server and CLI commands at the same time)',
      );
    }
    try {
      unlinkSync(file); // left by a process that no longer runs
    } catch {
      // Someone else took it over first: the next attempt sees theirs.
    }
  }
  throw new Error(`could not claim the embedded database in ${dir}`);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
