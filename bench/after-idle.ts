import { ensureDataset } from './lib/dataset.js';
import { measureCpu, pinGenerator } from './lib/cpu.js';
import { authCacheOf, BENCH, palisadeEnv } from './lib/env.js';
import { runLoad, type Target } from './lib/load.js';
import { startServer } from './lib/procs.js';
import { palisadeKeys, palisadeSessions } from './lib/sessions.js';

/**
 * npm run bench:after-idle — the protected read in rounds separated by idle time, on one server
 * process, sessions and keys in separate runs: does a round that starts after a minute's idle
 * (every session's touch due, the pool's connections closed after 30 s) run slower than the one
 * before it, and is that the session path's (touches, rows read again) or the process's? Written
 * to test the eighth session's open observation (docs/performance.md): in the full run the
 * session contender's later rounds were slower. BENCH_IDLE_SECONDS (70) between rounds;
 * BENCH_KINDS=sessions or keys for one of the two.
 */
const IDLE_SECONDS = Number(process.env.BENCH_IDLE_SECONDS ?? 70);
const log = (s: string) => process.stdout.write(`${s}\n`);
pinGenerator();
const users = await ensureDataset(log);

async function rounds(kind: 'sessions' | 'keys', port: number): Promise<void> {
  const server = await startServer(`palisade-${kind}`, 'palisade.ts', port, palisadeEnv(port));
  try {
    const targets: Target[] = kind === 'keys' ? await palisadeKeys(server.base, users) : await palisadeSessions(users);
    await runLoad(server.base, targets, { seconds: BENCH.warmupSeconds, connections: BENCH.connections });
    for (let i = 0; i < BENCH.rounds; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, IDLE_SECONDS * 1000));
      const before = await authCacheOf(port);
      const { result, cpu } = await measureCpu(server.proc.pid ?? 0, () => runLoad(server.base, targets, { seconds: BENCH.seconds, connections: BENCH.connections }));
      const after = await authCacheOf(port);
      const d = (k: 'misses' | 'stale') => (after && before ? after[k] - before[k] : NaN);
      log(`${kind} round ${i + 1}${i > 0 ? ` after ${IDLE_SECONDS} s idle` : ''}: ${Math.round(result.rps)} req/s  p99 ${result.p99} ms  p99.9 ${result.p999} ms  `
        + `server ${Math.round((cpu.server / Math.max(1, result.total)) * 1e6)} µs/req  postgres ${Math.round((100 * cpu.postgres) / cpu.wallSeconds)} %  cache misses ${d('misses')}, read again ${d('stale')}`);
    }
  } finally {
    await server.stop();
  }
}

const kinds = (process.env.BENCH_KINDS ?? 'sessions,keys').split(',');
if (kinds.includes('sessions')) await rounds('sessions', 4111);
if (kinds.includes('keys')) await rounds('keys', 4112);
