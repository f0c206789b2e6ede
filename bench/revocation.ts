import { ensureDataset } from './lib/dataset.js';
import { palisadeEnv, runMain } from './lib/env.js';
import { startServer } from './lib/procs.js';
import { revocationLag } from './lib/revocation.js';

/**
 * npm run bench:revocation: the revocation-lag figure of `npm run bench` alone. Two server
 * processes on the bench database; sessions signed out through A, read back through B until B
 * refuses (bench/lib/revocation.ts). BENCH_REVOCATIONS samples (200).
 */
const log = (s: string) => process.stdout.write(`${s}\n`);

runMain(async () => {
  const users = await ensureDataset(log);
  const a = await startServer('palisade-a', 'palisade.ts', 4102, palisadeEnv(4102));
  const b = await startServer('palisade-b', 'palisade.ts', 4106, palisadeEnv(4106));
  try {
    for (const [label, samples] of [['warm-up', 20], ['measured', Number(process.env.BENCH_REVOCATIONS ?? 200)]] as const) {
      const r = await revocationLag(a.base, b.base, users, samples);
      log(`${label}: ${r.samples} sign-outs through A: B refused after p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(1)} ms `
        + `(target p99 ≤ 50 ms); B served ${r.servedAfter} requests after A's answer; A served ${r.servedByA} (must be 0)`);
      if (r.servedByA > 0) throw new Error('the instance that revoked served the session afterwards');
    }
  } finally {
    await a.stop();
    await b.stop();
  }
  process.exit(0);
});
