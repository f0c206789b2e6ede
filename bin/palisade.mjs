#!/usr/bin/env node
// `npx palisade …`: in production run the compiled CLI (dist/, made by `npm run build`) when it
// exists, as `npm start` runs the compiled server; otherwise the TypeScript sources through tsx's
// loader, so that a fresh clone needs no build step.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadDotEnv } from './env-file.mjs';

loadDotEnv();

const compiled = fileURLToPath(new URL('../dist/cli.js', import.meta.url));
let cliModule = compiled;
if (process.env.NODE_ENV !== 'production' || !existsSync(compiled)) {
  const { register } = await import('tsx/esm/api');
  register();
  cliModule = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
}
const { runCli } = await import(cliModule);
runCli(process.argv.slice(2)).then(
  (code) => { if (code !== undefined && code !== null && typeof code === 'number') process.exit(code); },
  (err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err?.name === 'ConfigError' ? 2 : 1);
  },
);
