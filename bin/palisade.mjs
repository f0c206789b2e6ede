#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader, so that `npx palisade …` needs no build step.
import { register } from 'tsx/esm/api';
import { fileURLToPath } from 'node:url';
import { loadDotEnv } from './env-file.mjs';

loadDotEnv();

register();
const { runCli } = await import(fileURLToPath(new URL('../src/cli.ts', import.meta.url)));
runCli(process.argv.slice(2)).then(
  (code) => { if (code !== undefined && code !== null && typeof code === 'number') process.exit(code); },
  (err) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(err?.name === 'ConfigError' ? 2 : 1);
  },
);
