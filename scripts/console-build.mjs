// Builds the admin console (web/) into web/dist when it is missing or stale: `npm start`, the
// test run and `npm run build` all call ensureConsole(), so a fresh clone needs no build step and
// built assets are never committed. Stale means the hash of what the bundle is made of (the
// console's sources, the server's sources its API types come from, the lock file) changed.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const web = join(root, 'web');
const stamp = join(web, 'dist', '.inputs');

function files(dir, keep) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...files(path, keep));
    else if (keep(path)) out.push(path);
  }
  return out;
}

export function consoleInputsHash() {
  const inputs = [
    ...files(join(web, 'src'), (p) => !p.endsWith('.gen.ts')),
    ...['index.html', 'vite.config.ts', 'tsconfig.json'].map((f) => join(web, f)),
    // The API types are generated from the route table, which lives in the server's sources.
    ...files(join(root, 'src'), (p) => p.endsWith('.ts') && !p.endsWith('.test.ts')),
    join(root, 'scripts', 'console-api.ts'),
    join(root, 'package-lock.json'),
  ];
  const h = createHash('sha256');
  for (const f of inputs) h.update(relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
  return h.digest('hex');
}

export function consoleIsCurrent() {
  return existsSync(stamp) && readFileSync(stamp, 'utf8') === consoleInputsHash();
}

/** Generates the API types and builds the bundle unless web/dist is current. */
export function ensureConsole({ force = false, log = (m) => process.stderr.write(`${m}\n`) } = {}) {
  if (!force && consoleIsCurrent()) return false;
  log('building the admin console (web/dist): its sources changed or it was never built…');
  const started = Date.now();
  const hash = consoleInputsHash();
  execFileSync(process.execPath, ['--import', 'tsx', join(root, 'scripts', 'console-api.ts')], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  execFileSync(process.execPath, [join(root, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', '--logLevel', 'warn'], { cwd: web, stdio: ['ignore', 'inherit', 'inherit'] });
  writeFileSync(stamp, hash);
  log(`admin console built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) ensureConsole({ force: process.argv.includes('--force') });
