#!/usr/bin/env node
// `npm start`: in production run the compiled server (dist/, made by `npm run build`), so nothing
// compiles TypeScript at run time; in development run the sources through tsx, so a fresh clone
// starts with `npm ci && npm start` and no build step.
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadDotEnv } from './env-file.mjs';

loadDotEnv();

const compiled = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const production = process.env.NODE_ENV === 'production';
if (production && !existsSync(compiled)) {
  process.stderr.write('NODE_ENV=production runs the compiled server: run `npm run build` first (dist/main.js is missing)\n');
  process.exit(2);
}
// The console is built from source when missing or stale (never committed): a fresh clone's
// `npm ci && npm start` serves it. In production the build step made it, as it made dist/.
if (production) {
  if (!existsSync(fileURLToPath(new URL('../web/dist/index.html', import.meta.url)))) {
    process.stderr.write('NODE_ENV=production serves the built console: run `npm run build` first (web/dist is missing)\n');
    process.exit(2);
  }
} else {
  const { ensureConsole } = await import('../scripts/console-build.mjs');
  ensureConsole();
}
const args = production
  ? ['--enable-source-maps', compiled]
  : ['--import', import.meta.resolve('tsx'), fileURLToPath(new URL('../src/main.ts', import.meta.url))];
const child = spawn(process.execPath, [...args, ...process.argv.slice(2)], { stdio: 'inherit' });
// The server handles SIGINT/SIGTERM itself (graceful stop); pass them on and exit as it does.
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
