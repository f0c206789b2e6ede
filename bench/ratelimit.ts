import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { randomToken, sha256Hex } from '../src/crypto/index.js';
import { createRateLimiter, type RateLimitDecision, type RateLimiter } from '../src/http/rate-limit/index.js';

/**
 * npx tsx bench/ratelimit.ts — what the rate limiter adds to a request, and whether it ever
 * over-admits. Latency of hit() (key hashing included) with Redis, sequential and with 32
 * concurrent callers, beside the memory implementation and a bare Redis PING (the floor any
 * Redis-backed limiter pays). Then two limiter instances sharing Redis, driven at 2× the limit.
 * REDIS_URL overrides redis://127.0.0.1:6379.
 */
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const HITS = 20_000;
const CONCURRENCY = 32;
const KEYS = 2_000; // distinct callers: 10 hits each, all admitted under the 600/60 s policy
const log = (s: string) => process.stdout.write(`${s}\n`);
const prefix = `palisade-bench:rl:${randomToken(6)}:`;
const quiet = { warn: (obj: object, msg: string) => log(`warn: ${msg} ${JSON.stringify(obj)}`) };

interface Row {
  name: string;
  hits: number;
  ms: number[];
  wallMs: number;
  note: string;
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

/** Runs `n` operations from `concurrency` callers; returns each operation's latency in ms. */
async function drive(n: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<{ ms: number[]; wallMs: number }> {
  const ms: number[] = new Array<number>(n);
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        const i = next++;
        const t = performance.now();
        await op(i);
        ms[i] = performance.now() - t;
      }
    }),
  );
  return { ms, wallMs: performance.now() - t0 };
}

async function latency(name: string, l: RateLimiter, concurrency: number): Promise<Row> {
  let refused = 0;
  let failedOpen = 0;
  const tally = (d: RateLimitDecision) => {
    if (!d.allowed) refused++;
    if (d.failedOpen) failedOpen++;
  };
  const run = `${randomToken(4)}`; // fresh keys per run so every hit is an admitted write
  await drive(1_000, concurrency, (i) => l.hit('authenticated', ['warm', run, String(i % KEYS)])); // warm-up: JIT, connection, script cache
  const { ms, wallMs } = await drive(HITS, concurrency, async (i) => tally(await l.hit('authenticated', ['key', run, String(i % KEYS)])));
  return { name, hits: HITS, ms, wallMs, note: `${refused} refused, ${failedOpen} failed open` };
}

async function pingFloor(concurrency: number): Promise<Row> {
  const r = new Redis(REDIS_URL);
  await drive(1_000, concurrency, () => r.ping());
  const { ms, wallMs } = await drive(HITS, concurrency, () => r.ping());
  r.disconnect();
  return { name: `redis PING (floor), ${concurrency === 1 ? 'sequential' : `${concurrency} callers`}`, hits: HITS, ms, wallMs, note: 'no limiter' };
}

function table(rows: Row[]): void {
  const us = (v: number) => (v * 1000).toFixed(0).padStart(7);
  log(`${'scenario'.padEnd(42)} ${'hits'.padStart(6)} ${'p50 µs'.padStart(7)} ${'p99 µs'.padStart(7)} ${'max µs'.padStart(7)} ${'hits/s'.padStart(9)}  note`);
  for (const r of rows) {
    const s = [...r.ms].sort((a, b) => a - b);
    const rate = Math.round((r.hits / r.wallMs) * 1000).toLocaleString('en-US');
    log(`${r.name.padEnd(42)} ${String(r.hits).padStart(6)} ${us(pct(s, 50))} ${us(pct(s, 99))} ${us(s[s.length - 1] ?? 0)} ${rate.padStart(9)}  ${r.note}`);
  }
}

/** Two connected instances sharing Redis, one key, 2× the limit fired at once from one process. */
async function burst(limit: number): Promise<string> {
  const policies = { 'password-reset': { limit, windowSeconds: 60 } };
  const [a, b] = [0, 1].map(() => createRateLimiter({ redisUrl: REDIS_URL, keyPrefix: prefix, policies, logger: quiet })) as [RateLimiter, RateLimiter];
  await Promise.all([a.hit('probe', ['connect']), b.hit('probe', ['connect'])]); // connected before the clock starts
  const key = ['burst', randomToken(4)];
  const t0 = performance.now();
  const ds = await Promise.all(Array.from({ length: 2 * limit }, (_, i) => (i % 2 ? a : b).hit('password-reset', key)));
  const ms = performance.now() - t0;
  await Promise.all([a.close(), b.close()]);
  const counted = ds.filter((d) => d.allowed && !d.failedOpen);
  const open = ds.filter((d) => d.failedOpen).length;
  const byA = ds.filter((d, i) => d.allowed && !d.failedOpen && i % 2 === 1).length;
  return `burst ${String(2 * limit).padStart(5)} hits, limit ${String(limit).padStart(4)}: admitted ${counted.length} (A ${byA}, B ${counted.length - byA}), refused ${ds.length - counted.length - open}, failed open ${open}; whole burst ${ms.toFixed(0)} ms`;
}

/**
 * Two instances, 16 callers, paced at 2× the limit for several windows. The check uses the
 * server's own timestamps: the sorted set keeps every admitted hit for one window, so polling
 * it every 100 ms sees them all; the most admitted in any window (now - W, now] must be <= limit.
 */
async function sustained(limit: number, windowSeconds: number, windows: number): Promise<string> {
  const policies = { login: { limit, windowSeconds } };
  const inst = [0, 1].map(() => createRateLimiter({ redisUrl: REDIS_URL, keyPrefix: prefix, policies, logger: quiet }));
  const parts = ['sustained', randomToken(4)];
  const zkey = `${prefix}login:${sha256Hex(JSON.stringify(parts))}`;
  const admin = new Redis(REDIS_URL);
  const seen = new Map<string, number>();
  const snapshot = async () => {
    const flat = await admin.zrange(zkey, '0', '-1', 'WITHSCORES');
    for (let i = 0; i + 1 < flat.length; i += 2) seen.set(flat[i] as string, Number(flat[i + 1]));
  };
  const durationMs = windows * windowSeconds * 1000;
  const callers = 16;
  const intervalMs = ((windowSeconds * 1000) / (2 * limit)) * callers; // each caller's pace; together 2× the limit
  let sent = 0;
  let admitted = 0;
  let open = 0;
  let polling = true;
  let lastAt = 0;
  const poller = (async () => {
    while (polling) {
      await snapshot();
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      const l = inst[c % 2] as RateLimiter;
      const offset = (c * intervalMs) / callers;
      for (let k = 0; performance.now() - t0 < durationMs; k++) {
        const wait = t0 + offset + k * intervalMs - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        lastAt = performance.now() - t0;
        const d = await l.hit('login', parts);
        sent++;
        if (d.failedOpen) open++;
        else if (d.allowed) admitted++;
      }
    }),
  );
  polling = false;
  await poller;
  await snapshot();
  admin.disconnect();
  await Promise.all(inst.map((l) => l.close()));
  const times = [...seen.values()].sort((x, y) => x - y);
  let maxInWindow = 0;
  for (let i = 0, j = 0; i < times.length; i++) {
    while ((times[i] ?? 0) - (times[j] ?? 0) >= windowSeconds * 1e6) j++;
    maxInWindow = Math.max(maxInWindow, i - j + 1);
  }
  // Hits spread over [0, lastAt] fall in floor(lastAt / W) + 1 consecutive windows at most.
  const ceiling = limit * (Math.floor(lastAt / (windowSeconds * 1000)) + 1);
  return [
    `sustained: ${sent} hits in ${(lastAt / 1000).toFixed(2)} s at 2× the limit (${limit}/${windowSeconds} s) from 2 instances`,
    `  admitted ${admitted} (ceiling for that span ${ceiling}), failed open ${open}`,
    `  server-side check: ${times.length} admitted hits seen in Redis, most in any ${windowSeconds} s window ${maxInWindow} (limit ${limit})`,
  ].join('\n');
}

async function main(): Promise<void> {
  log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, redis at ${REDIS_URL.replace(/\/\/[^@]*@/, '//')}`);
  const redis = createRateLimiter({ redisUrl: REDIS_URL, keyPrefix: prefix, logger: quiet });
  const memory = createRateLimiter({ redisUrl: null, keyPrefix: prefix, logger: quiet });
  const rows: Row[] = [];
  rows.push(await pingFloor(1));
  rows.push(await latency('redis limiter, sequential', redis, 1));
  rows.push(await latency('memory limiter, sequential', memory, 1));
  rows.push(await pingFloor(CONCURRENCY));
  rows.push(await latency(`redis limiter, ${CONCURRENCY} callers`, redis, CONCURRENCY));
  rows.push(await latency(`memory limiter, ${CONCURRENCY} callers`, memory, CONCURRENCY));
  await Promise.all([redis.close(), memory.close()]);
  log('');
  log(`hit() latency, ${KEYS} distinct keys, policy authenticated (600/60 s), after 1,000 warm-up hits`);
  table(rows);
  log('');
  log('over-admission, Redis shared by two limiter instances');
  for (const limit of [100, 250, 1_000]) log(await burst(limit));
  log('  (a burst is issued from one process at once; past what it can push through Redis in the 50 ms budget, hits fail open)');
  log(await sustained(100, 1, 4));

  const admin = new Redis(REDIS_URL);
  let cursor = '0';
  do {
    const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    if (keys.length) await admin.del(...keys);
    cursor = next;
  } while (cursor !== '0');
  admin.disconnect();
}

await main();
