// Reads ./.env (when present) into process.env for `npm start` and `npx palisade`, so the server
// and the CLI always see the same configuration. A variable already set in the environment wins;
// src/config stays the only module that interprets the values.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseEnv } from 'node:util';

export function loadDotEnv(file = resolve('.env')) {
  if (!existsSync(file)) return;
  for (const [name, value] of Object.entries(parseEnv(readFileSync(file, 'utf8')))) {
    if (process.env[name] === undefined) process.env[name] = value;
  }
}
