import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDataset } from './lib/dataset.js';
import { BENCH, palisadeEnv } from './lib/env.js';
import { runLoad } from './lib/load.js';
import { palisadeKeys, palisadeSessions } from './lib/sessions.js';
import { startServer } from './lib/procs.js';

/**
 * npm run bench:profile — the protected read under load with --cpu-prof, then the functions
 * that took the most self time. Where the time goes, before changing anything.
 * BENCH_PROFILE=key profiles the same read authenticated by API keys (/v1) instead of sessions.
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

const byKey = process.env.BENCH_PROFILE === 'key';
const users = await ensureDataset((s) => process.stdout.write(`${s}\n`));
const dir = mkdtempSync(join(tmpdir(), 'palisade-prof-'));
const server = await startServer('palisade', 'palisade.ts', 4199, palisadeEnv(4199), ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
const targets = byKey ? await palisadeKeys(server.base, users) : await palisadeSessions(users);
await runLoad(server.base, targets, { seconds: 2, connections: BENCH.connections });
const r = await runLoad(server.base, targets, { seconds: BENCH.seconds, connections: BENCH.connections });
await server.stop();
process.stdout.write(`${Math.round(r.rps)} req/s during the profile (${byKey ? 'API keys' : 'sessions'}; non-2xx ${r.non2xx})\n`);
// One profile per thread: the main thread's is the largest (tsx's loader worker idles).
const file = readdirSync(dir)
  .filter((f) => f.endsWith('.cpuprofile'))
  .sort((a, b) => readFileSync(join(dir, b)).length - readFileSync(join(dir, a)).length)[0];
if (!file) throw new Error('no profile written');
const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as { nodes: ProfileNode[] };
const self = new Map<string, number>();
let total = 0;
for (const n of profile.nodes) {
  const hits = n.hitCount ?? 0;
  total += hits;
  const where = n.callFrame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/work\/main\//, '');
  const key = `${n.callFrame.functionName || '(anonymous)'} ${where}:${n.callFrame.lineNumber}`;
  self.set(key, (self.get(key) ?? 0) + hits);
}
for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 30)) {
  process.stdout.write(`${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}\n`);
}
process.stdout.write(`profile: ${join(dir, file)}\n`);
process.exit(0);
