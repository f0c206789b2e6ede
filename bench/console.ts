// `npm run bench:console`: what the admin console costs a browser. The bundle's size (raw and
// gzip, as the server sends it) and the sign-in page's time to interactive on loopback in Debian's
// Chromium (navigation start → the sign-in form answers a click), cold cache each round, against
// a baseline page of the same server in the same run (GET /readyz as a document: the network and
// browser floor).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { ensureConsole } from '../scripts/console-build.mjs';
import { startConsole } from '../test/console/browser.js';

const ROUNDS = Number(process.env.ROUNDS ?? 15);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

ensureConsole();
const assets = join(import.meta.dirname, '..', 'web', 'dist', 'assets');
let raw = 0;
let gz = 0;
for (const f of readdirSync(assets)) {
  const body = readFileSync(join(assets, f));
  raw += body.length;
  gz += gzipSync(body, { level: 9 }).length;
  process.stdout.write(`  ${f}: ${(body.length / 1024).toFixed(1)} KiB, gzip ${(gzipSync(body, { level: 9 }).length / 1024).toFixed(1)} KiB\n`);
}
process.stdout.write(`bundle: ${(raw / 1024).toFixed(1)} KiB, gzip ${(gz / 1024).toFixed(1)} KiB\n`);

const c = await startConsole('pglite');
const tti: number[] = [];
const floor: number[] = [];
try {
  for (let i = 0; i < ROUNDS; i++) {
    const { page, context } = await c.newPage();
    let t0 = performance.now();
    await page.goto('/readyz');
    floor.push(performance.now() - t0);
    t0 = performance.now();
    await page.goto('/sign-in');
    // Interactive: the form is rendered and takes input.
    await page.getByRole('form', { name: 'Sign in with a password' }).getByLabel('Email').fill('x@example.com');
    tti.push(performance.now() - t0);
    await context.close();
  }
} finally {
  await c.close();
}
process.stdout.write(
  `sign-in page time to interactive (${ROUNDS} rounds, cold cache): median ${median(tti).toFixed(0)} ms, ` +
    `max ${Math.max(...tti).toFixed(0)} ms; baseline document median ${median(floor).toFixed(0)} ms\n`,
);
