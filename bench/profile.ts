import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../src/db/open.js';
import { createSessionService } from '../src/domains/sessions/index.js';
import { systemClock } from '../src/kernel/clock.js';
import { systemContext } from '../src/kernel/context.js';
import { SYSTEM_ORG_ID } from '../src/kernel/ids.js';
import { ensureDataset } from './lib/dataset.js';
import { BENCH, dbUrl, palisadeEnv } from './lib/env.js';
import { runLoad, type Target } from './lib/load.js';
import { startServer } from './lib/procs.js';

/**
 * npm run bench:profile — the protected read under load with --cpu-prof, then the functions
 * that took the most self time. Where the time goes, before changing anything.
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

const users = await ensureDataset((s) => process.stdout.write(`${s}\n`));
const { db, owner } = await openDatabase(
  { kind: 'postgres', ownerUrl: dbUrl(), runtimeUrl: dbUrl(BENCH.runtimeRole), runtimeRole: BENCH.runtimeRole, runtimePassword: null, poolSize: 4 },
  { migrate: false },
);
const sessions = createSessionService({ db, clock: systemClock, secret: Buffer.from(BENCH.sessionSecret, 'base64'), idleSeconds: 1800, absoluteSeconds: 28800, touchIntervalSeconds: 60 });
const targets: Target[] = [];
for (const u of users) {
  const s = await db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => sessions.issue(tx, u.userId, systemContext('bench')));
  targets.push({ path: `/api/orgs/${u.orgId}/projects/${u.projectId}/assets?limit=20`, headers: { cookie: `__Host-palisade_session=${s.cookie}` }, project: u.projectId });
}
await db.close();
await owner.close();
const dir = mkdtempSync(join(tmpdir(), 'palisade-prof-'));
const server = await startServer('palisade', 'palisade.ts', 4199, palisadeEnv(4199), ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
await runLoad(server.base, targets, { seconds: 2, connections: BENCH.connections });
const r = await runLoad(server.base, targets, { seconds: BENCH.seconds, connections: BENCH.connections });
await server.stop();
process.stdout.write(`${Math.round(r.rps)} req/s during the profile\n`);
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
