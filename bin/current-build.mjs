// Whether a compiled file is a build of the sources as they are now: no file under `sources` is
// newer than it. An unreadable entry (a broken link, a file gone mid-walk) counts as newer, so a
// doubt runs the sources, never a stale build.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function newestUnder(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestUnder(path) : statSync(path).mtimeMs);
  }
  return newest;
}

export function isCurrentBuild(compiled, sources) {
  if (!existsSync(compiled)) return false;
  if (!existsSync(sources)) return true;
  try {
    return statSync(compiled).mtimeMs >= newestUnder(sources);
  } catch {
    return false;
  }
}
