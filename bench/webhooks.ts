import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { buildApp, type BuiltApp } from '../src/app.js';
import { loadConfig } from '../src/config/index.js';
import { newId } from '../src/crypto/index.js';
import type { OpenedDatabase } from '../src/db/open.js';
import { seedDemo } from '../src/demo.js';
import { createAuditWriter, type AuditWriter } from '../src/domains/audit/index.js';
import { createWebhookTransport, createWebhookWorker, newWebhookSecret, signedHeaders } from '../src/domains/webhooks/index.js';
import { systemClock } from '../src/kernel/clock.js';
import { systemContext } from '../src/kernel/context.js';
import { SYSTEM_ORG_ID } from '../src/kernel/ids.js';
import { createLogger } from '../src/logging.js';
import { BENCH, dbUrl, dropDatabase, freshDatabase } from './lib/env.js';
import type { ReceiverStats } from './servers/receiver.js';
import { percentile } from './lib/load.js';

/**
 * npm run bench:webhooks — outbound webhooks on PostgreSQL, against baselines measured in the
 * same run:
 *  1. enqueue: audit appends with the outbox (one pending delivery per subscribed endpoint,
 *     written by the app's audit writer in the change's transaction) against the same appends by
 *     a writer without the outbox; and a real change (POST an asset through the route) with and
 *     without a subscribed endpoint;
 *  2. delivery: the worker draining a queue to a loopback receiver (another process answering
 *     204) against the transport ceiling — the same number of POSTs to the same receiver with the
 *     same concurrency and no database, through a keep-alive agent and through the webhook
 *     transport itself (fresh socket per delivery, destination check, signature);
 *  3. latency: the worker running as the server runs it (and with a shorter idle poll), events
 *     appended at a steady rate one per transaction, time from the event to its receipt.
 * During each drain, the database sessions are sampled to show what the worker waits on.
 * A fresh database every run (BENCH_WEBHOOK_DB, default palisade_bench_webhooks), dropped at the end
 * unless BENCH_WEBHOOK_KEEP=1.
 */
const log = (s: string) => process.stdout.write(`${s}\n`);
const DB_NAME = process.env.BENCH_WEBHOOK_DB ?? 'palisade_bench_webhooks';
/** Events per enqueue measurement (50 per transaction) and per delivery measurement. */
const EVENTS = Number(process.env.BENCH_WEBHOOK_EVENTS ?? 3000);
/** Events per enqueue measurement one per transaction, and deliveries at concurrency 1. */
const SINGLE_EVENTS = Number(process.env.BENCH_WEBHOOK_SINGLE_EVENTS ?? 500);
const CHANGES = Number(process.env.BENCH_WEBHOOK_CHANGES ?? 200);
const BATCH = 50;
const ROUNDS = 3;
const CONCURRENCY = (process.env.BENCH_WEBHOOK_CONCURRENCY ?? '16,1,64').split(',').map(Number);
const LIVE_RATE = Number(process.env.BENCH_WEBHOOK_LIVE_RATE ?? 100);
const LIVE_SECONDS = Number(process.env.BENCH_WEBHOOK_LIVE_SECONDS ?? 5);
/** Diagnosis only: `off` sets synchronous_commit off for the bench database (commits stop waiting for the WAL flush). */
const SYNC_COMMIT = process.env.BENCH_WEBHOOK_SYNCHRONOUS_COMMIT;

function fmt(n: number, d = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
}


const median = (xs: number[]) => percentile(xs, 50);

/** The CPU time (µs, user + system) this process spent on `fn`, per one of its `n` operations. */
async function cpuPer<T>(n: number, fn: () => Promise<T>): Promise<{ result: T; cpuUs: number }> {
  const before = process.cpuUsage();
  const result = await fn();
  const used = process.cpuUsage(before);
  return { result, cpuUs: (used.user + used.system) / n };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `n` calls of `op`, `concurrency` at a time; returns calls per second. */
async function lanes(n: number, concurrency: number, op: (i: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) await op(next++);
    }),
  );
  return n / ((performance.now() - t0) / 1000);
}

/** The receiver process (bench/servers/receiver.ts), asked over IPC. */
class Receiver {
  private constructor(
    private readonly proc: ChildProcess,
    readonly base: string,
  ) {}

  static start(): Promise<Receiver> {
    const file = fileURLToPath(new URL('./servers/receiver.ts', import.meta.url));
    const proc = spawn(process.execPath, ['--import', 'tsx', file], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    return new Promise((resolve, reject) => {
      proc.once('message', (m: { type?: string; port?: number }) => {
        if (m.type === 'ready' && m.port) resolve(new Receiver(proc, `http://127.0.0.1:${m.port}`));
        else reject(new Error('receiver did not start'));
      });
      proc.once('exit', (code) => reject(new Error(`receiver exited (${code})`)));
    });
  }

  private ask<T>(type: string): Promise<T> {
    return new Promise((resolve) => {
      const on = (m: { type?: string }) => {
        if (m.type !== type) return;
        this.proc.off('message', on);
        resolve(m as T);
      };
      this.proc.on('message', on);
      this.proc.send({ type });
    });
  }

  reset(): Promise<void> {
    return this.ask<unknown>('reset').then(() => undefined);
  }

  stats(): Promise<ReceiverStats> {
    return this.ask<ReceiverStats>('stats');
  }

  stop(): void {
    this.proc.disconnect();
  }
}

/**
 * What the database's sessions of the bench database were doing while `fn` ran, sampled every
 * 10 ms: the mean number of sessions in each wait (`CPU` when active and not waiting; `idle in
 * transaction`: waiting for Node to send the next statement).
 */
async function sampleSessions<T>(fn: () => Promise<T>): Promise<{ result: T; waits: [string, number][] }> {
  const c = new pg.Client({ connectionString: dbUrl('postgres', DB_NAME) });
  await c.connect();
  const totals = new Map<string, number>();
  let samples = 0;
  let done = false;
  const loop = (async () => {
    while (!done) {
      const r = await c.query<{ w: string; n: number }>(
        `select case when state = 'idle in transaction' then 'idle in transaction' else coalesce(wait_event_type || ':' || wait_event, 'CPU') end as w,
                count(*)::int as n
         from pg_stat_activity where datname = $1 and pid <> pg_backend_pid() and state in ('active', 'idle in transaction') group by 1`,
        [DB_NAME],
      );
      samples++;
      for (const row of r.rows) totals.set(row.w, (totals.get(row.w) ?? 0) + row.n);
      await sleep(10);
    }
  })();
  try {
    const result = await fn();
    return { result, waits: [...totals].map(([w, n]): [string, number] => [w, n / Math.max(1, samples)]).sort((a, b) => b[1] - a[1]) };
  } finally {
    done = true;
    await loop;
    await c.end();
  }
}


interface Setup {
  opened: OpenedDatabase;
  built: BuiltApp;
  orgId: string;
  projectId: string;
  call(method: 'POST' | 'PATCH', url: string, payload: object): Promise<{ status: number; body: string }>;
}

/** The real app on the fresh database, the demo orgs, and a console session of acme's owner (with a fresh step-up). */
async function setup(): Promise<Setup> {
  const opened = await freshDatabase(DB_NAME, BENCH.poolSize, SYNC_COMMIT ? { synchronous_commit: SYNC_COMMIT } : {});
  const config = loadConfig({
    PALISADE_ENV: 'development',
    PUBLIC_ORIGIN: BENCH.publicOrigin,
    PALISADE_KEKS: BENCH.kek,
    PALISADE_SESSION_SECRET: BENCH.sessionSecret,
    PALISADE_STATE_DIR: '/tmp/palisade-bench-state',
    PALISADE_DB_POOL_SIZE: String(BENCH.poolSize),
    PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true',
    RATE_LIMITS: 'authenticated=100000000/60',
    LOG_LEVEL: 'warn',
  });
  const built = await buildApp({ config, db: opened.db, clock: systemClock, logger: createLogger('warn') });
  const demo = await seedDemo(opened.db, built.services);
  const org = demo.orgs.find((o) => o.slug === 'acme');
  const owner = demo.logins.find((l) => l.org === 'acme' && l.role === 'owner');
  if (!org || !owner) throw new Error('demo data without acme or its owner');
  const userId = owner.userId;
  const s = await opened.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
    built.services.sessions.issue(tx, userId, systemContext('bench'), { proof: { mfaVerified: false, steppedUpAt: new Date() } }),
  );
  const cookie = `${built.cookie.name}=${s.cookie}`;
  return {
    opened, built, orgId: org.id, projectId: (org.projects[0] as { id: string }).id,
    async call(method, url, payload) {
      const res = await built.app.inject({ method, url, headers: { cookie, origin: BENCH.publicOrigin }, payload });
      return { status: res.statusCode, body: res.body };
    },
  };
}

async function main(): Promise<void> {
  log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; database ${DB_NAME} (fresh), pool ${BENCH.poolSize}`
    + `${SYNC_COMMIT ? `, synchronous_commit = ${SYNC_COMMIT} (diagnosis)` : ''}`);
  const t0 = performance.now();
  const receiver = await Receiver.start();
  const s = await setup();
  const { opened, built, orgId, projectId } = s;
  const db = opened.db;
  const logger = createLogger('warn');
  try {
    // Four endpoints of acme on the receiver; each subscribed to asset.created or not, per phase.
    const endpoints: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await s.call('POST', `/api/orgs/${orgId}/webhooks`, { url: `${receiver.base}/hook/${i}`, events: ['project.deleted'] });
      if (res.status !== 201) throw new Error(`endpoint creation failed: ${res.status} ${res.body}`);
      endpoints.push((JSON.parse(res.body) as { endpoint: { id: string } }).endpoint.id);
    }
    /** The first `k` endpoints subscribed to asset.created, the others to project.deleted only (through the route). */
    async function subscribe(k: number): Promise<void> {
      for (const [i, id] of endpoints.entries()) {
        const res = await s.call('PATCH', `/api/orgs/${orgId}/webhooks/${id}`, { events: [i < k ? 'asset.created' : 'project.deleted'] });
        if (res.status !== 200) throw new Error(`endpoint update failed: ${res.status} ${res.body}`);
      }
    }
    /** Bench housekeeping between phases (owner connection, not measured): an empty outbox. */
    async function clearOutbox(): Promise<void> {
      await opened.owner.query('delete from webhook_attempts');
      await opened.owner.query('delete from webhook_deliveries');
      await opened.owner.query('delete from webhook_due');
    }
    const pending = async () =>
      (await opened.owner.query<{ n: number }>(`select count(*)::int as n from webhook_deliveries where status = 'pending'`))[0]?.n ?? 0;

    /** `n` asset.created audit events appended through `writer`, `perTx` per transaction; events per second. */
    async function append(writer: AuditWriter, n: number, perTx: number): Promise<number> {
      const start = performance.now();
      for (let i = 0; i < n; i += perTx) {
        const ctx = systemContext('bench-webhooks');
        await db.withTenant({ orgId, projectIds: null }, async (tx) => {
          for (let j = i; j < Math.min(n, i + perTx); j++) {
            await writer.append(tx, orgId, ctx, { action: 'asset.created', target: { type: 'asset', id: newId() }, details: { projectId, name: `bench-${j}` } });
          }
        });
      }
      return n / ((performance.now() - start) / 1000);
    }

    // 1. Enqueue cost.
    const bare = createAuditWriter({ db, clock: systemClock, keys: built.services.chainKeys, sealer: built.services.sealer, onError: () => undefined });
    const variants: { name: string; writer: AuditWriter; subscribed: number }[] = [
      { name: 'audit append alone (writer without the outbox)', writer: bare, subscribed: 0 },
      { name: '+ outbox, no endpoint subscribed', writer: built.services.audit, subscribed: 0 },
      { name: '+ outbox, 1 endpoint subscribed', writer: built.services.audit, subscribed: 1 },
      { name: '+ outbox, 4 endpoints subscribed', writer: built.services.audit, subscribed: 4 },
    ];
    const enqueue: Record<string, { batch: number[]; single: number[] }> = Object.fromEntries(variants.map((v) => [v.name, { batch: [], single: [] }]));
    log(`enqueue: ${fmt(EVENTS)} events ${BATCH} per transaction and ${fmt(SINGLE_EVENTS)} one per transaction, per variant, ${ROUNDS} rounds in rotating order`);
    await append(bare, 500, BATCH); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      const order = variants.map((_, i) => variants[(i + round) % variants.length] as (typeof variants)[number]);
      for (const v of order) {
        await subscribe(v.subscribed);
        const batch = await append(v.writer, EVENTS, BATCH);
        const single = await append(v.writer, SINGLE_EVENTS, 1);
        enqueue[v.name]?.batch.push(batch);
        enqueue[v.name]?.single.push(single);
        log(`  round ${round + 1} ${v.name.padEnd(46)} ${fmt(batch)} events/s (${BATCH}/tx), ${fmt(single)} events/s (1/tx)`);
        await clearOutbox();
      }
    }

    // A real audited change: an asset created through the console route (session, RBAC, RLS, sealed fields, audit, outbox).
    async function changes(n: number): Promise<number> {
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        const res = await s.call('POST', `/api/orgs/${orgId}/projects/${projectId}/assets`, { name: `bench-change-${i}`, kind: 'host' });
        if (res.status !== 201) throw new Error(`asset creation failed: ${res.status} ${res.body}`);
      }
      return n / ((performance.now() - start) / 1000);
    }
    const real: Record<number, number[]> = { 0: [], 1: [] };
    await changes(50); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const k of round % 2 === 0 ? [0, 1] : [1, 0]) {
        await subscribe(k);
        real[k]?.push(await changes(CHANGES));
        await clearOutbox();
      }
    }

    const base = median(enqueue[variants[0]?.name ?? '']?.batch ?? []);
    const baseSingle = median(enqueue[variants[0]?.name ?? '']?.single ?? []);
    log(`\n| enqueue (median of ${ROUNDS} rounds) | events/s, ${BATCH} per tx | × writer without outbox | events/s, 1 per tx | × writer without outbox |`);
    log('|---|---:|---:|---:|---:|');
    for (const v of variants) {
      const r = enqueue[v.name] as { batch: number[]; single: number[] };
      log(`| ${v.name} | ${fmt(median(r.batch))} | ${fmt(median(r.batch) / base, 2)} | ${fmt(median(r.single))} | ${fmt(median(r.single) / baseSingle, 2)} |`);
    }
    const real0 = median(real[0] ?? []);
    const real1 = median(real[1] ?? []);
    log(`| real change: POST an asset (route, in process), no endpoint subscribed | | | ${fmt(real0)} changes/s | 1.00 (its own baseline) |`);
    log(`| real change, 1 endpoint subscribed | | | ${fmt(real1)} changes/s | ${fmt(real1 / real0, 2)} × no endpoint |`);

    // 2. Delivery throughput against the transport ceiling.
    await subscribe(1);
    const secret = newWebhookSecret();
    const transport = createWebhookTransport({ allowLoopback: true });
    const hookUrl = `${receiver.base}/hook/ceiling`;
    const samplePayload = () => JSON.stringify({
      type: 'asset.created', timestamp: new Date().toISOString(),
      data: { id: newId(), orgId, actor: { type: 'system', id: 'bench-webhooks' }, target: { type: 'asset', id: newId() }, details: { projectId, name: 'bench' } },
    });
    /** Plain POSTs through a keep-alive agent: what the receiver and loopback allow. */
    async function keepAlivePosts(n: number, c: number): Promise<number> {
      const agent = new http.Agent({ keepAlive: true, maxSockets: c });
      const rate = await lanes(n, c, () =>
        new Promise<void>((resolve, reject) => {
          const body = samplePayload();
          const req = http.request(hookUrl, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } }, (res) => {
            res.resume();
            res.on('end', () => (res.statusCode === 204 ? resolve() : reject(new Error(`receiver answered ${res.statusCode}`))));
          });
          req.on('error', reject);
          req.end(body);
        }),
      );
      agent.destroy();
      return rate;
    }
    /** The worker's own transport and signature, no database: a fresh socket per delivery, as the worker sends. */
    async function transportPosts(n: number, c: number): Promise<number> {
      return lanes(n, c, async () => {
        const body = samplePayload();
        const outcome = await transport.send(hookUrl, signedHeaders(`msg_${newId().replace(/-/g, '')}`, new Date(), body, [secret]), body);
        if (!outcome.ok) throw new Error(`transport: ${outcome.error ?? 'failed'}`);
      });
    }
    const delivery: { c: number; endpoints: number; n: number; keepAlive: number; transport: number; transportCpu: number; worker: number; workerCpu: number; waits: [string, number][] }[] = [];
    log('');
    const runs = [...CONCURRENCY.map((c) => ({ c, k: 1 })), { c: 16, k: 4 }];
    for (const { c, k } of runs) {
      // The same number of deliveries in every run but concurrency 1 (slow): with 4 endpoints, a quarter of the events.
      const n = c === 1 ? SINGLE_EVENTS : EVENTS;
      await clearOutbox();
      await subscribe(k);
      await append(built.services.audit, n / k, BATCH);
      if ((await pending()) !== n) throw new Error('the outbox does not hold one delivery per event and endpoint');
      await receiver.reset();
      const keepAlive = await keepAlivePosts(n, c);
      const { result: viaTransport, cpuUs: transportCpu } = await cpuPer(n, () => transportPosts(n, c));
      await receiver.reset();
      const worker = createWebhookWorker({ db, clock: systemClock, sealer: built.services.sealer, audit: built.services.audit, transport, logger, concurrency: c });
      const start = performance.now();
      const { result: { result: attempted, waits }, cpuUs: workerCpu } = await cpuPer(n, () => sampleSessions(() => worker.drain()));
      const rate = attempted / ((performance.now() - start) / 1000);
      const got = await receiver.stats();
      const ok = (await opened.owner.query<{ n: number }>(`select count(*)::int as n from webhook_deliveries where status = 'succeeded'`))[0]?.n ?? 0;
      // One webhook-id per event: its endpoints all receive the same one.
      if (attempted !== n || got.count !== n || got.distinct !== n / k || ok !== n) {
        throw new Error(`concurrency ${c}, ${k} endpoints: ${attempted} attempted, ${got.count} received (${got.distinct} distinct), ${ok} succeeded, of ${n}`);
      }
      delivery.push({ c, endpoints: k, n, keepAlive, transport: viaTransport, transportCpu, worker: rate, workerCpu, waits });
      log(`  concurrency ${c}, ${k} endpoint(s): keep-alive POSTs ${fmt(keepAlive)}/s, webhook transport ${fmt(viaTransport)}/s, worker ${fmt(rate)} deliveries/s; `
        + `database sessions during the drain: ${waits.slice(0, 5).map(([w, m]) => `${w} ${fmt(m, 1)}`).join(', ')}`);
    }
    log('\n| delivery (loopback receiver, 204) | deliveries | plain POST, keep-alive (/s) | webhook transport, no DB (/s) | worker (deliveries/s) | worker × transport | worker × keep-alive | Node CPU µs per send: transport / worker |');
    log('|---|---:|---:|---:|---:|---:|---:|---:|');
    for (const d of delivery) {
      log(`| concurrency ${d.c}, ${d.endpoints} endpoint${d.endpoints > 1 ? 's' : ''} | ${fmt(d.n)} | ${fmt(d.keepAlive)} | ${fmt(d.transport)} | ${fmt(d.worker)} | `
        + `${fmt(d.worker / d.transport, 2)} | ${fmt(d.worker / d.keepAlive, 2)} | ${fmt(d.transportCpu)} / ${fmt(d.workerCpu)} |`);
    }
    log('\nmean database sessions of the drain, by what they waited on (CPU: running; idle in transaction: waiting for Node):');
    for (const d of delivery) log(`  concurrency ${d.c}, ${d.endpoints} endpoint(s): ${d.waits.slice(0, 6).map(([w, m]) => `${w} ${fmt(m, 1)}`).join(', ')}`);

    // 3. Latency with the worker running as the server runs it (concurrency 16, woken by the NOTIFY
    // a queued delivery sends on commit, polling as a fallback), then without the wake-up (polling
    // only, its default pause and a 50 ms one): what the NOTIFY saves.
    await clearOutbox();
    await subscribe(1);
    const liveRuns: { rate: number; idleMs?: number; wake: boolean }[] = [
      { rate: LIVE_RATE, wake: true }, { rate: 10, wake: true }, { rate: LIVE_RATE, wake: false }, { rate: LIVE_RATE, idleMs: 50, wake: false },
    ];
    // The same database without its listener: the worker then only polls.
    const pollOnly: typeof db = Object.create(db, { listen: { value: () => Promise.resolve(() => Promise.resolve()) } }) as typeof db;
    const liveRows: string[] = [];
    for (const { rate, idleMs, wake } of liveRuns) {
      await receiver.reset();
      const live = createWebhookWorker({ db: wake ? db : pollOnly, clock: systemClock, sealer: built.services.sealer, audit: built.services.audit, transport, logger, ...(idleMs ? { idleMs } : {}) });
      live.start();
      await live.listening();
      const total = Math.round(rate * LIVE_SECONDS);
      const liveStart = performance.now();
      for (let i = 0; i < total; i++) {
        const wait = liveStart + (i * 1000) / rate - performance.now();
        if (wait > 0) await sleep(wait);
        await append(built.services.audit, 1, 1);
      }
      const produced = total / ((performance.now() - liveStart) / 1000);
      const deadline = Date.now() + 30_000;
      let got = await receiver.stats();
      while (got.count < total && Date.now() < deadline) {
        await sleep(50);
        got = await receiver.stats();
      }
      await live.stop();
      if (got.count !== total) throw new Error(`live: ${got.count} of ${total} received`);
      const row = `| ${fmt(produced)} events/s for ${LIVE_SECONDS} s, ${wake ? 'woken on commit (as the server runs it)' : `polling only, ${idleMs ? `idle poll ${fmt(idleMs)} ms` : 'the default idle poll'}`} | ${fmt(total)} | `
        + `${fmt(percentile(got.latencies, 50))} | ${fmt(percentile(got.latencies, 99))} | ${fmt(Math.max(...got.latencies))} |`;
      liveRows.push(row);
      log(`  live ${row}`);
      await clearOutbox();
    }
    log('\n| live: worker started (concurrency 16), one change per transaction | events | event → receipt p50 ms | p99 ms | max ms |');
    log('|---|---:|---:|---:|---:|');
    for (const row of liveRows) log(row);
    log(`\ntotal ${fmt((performance.now() - t0) / 1000, 1)} s`);
  } finally {
    await built.app.close();
    await opened.db.close();
    await opened.owner.close();
    receiver.stop();
    // BENCH_WEBHOOK_KEEP=1 leaves the database for inspection; the next run recreates it anyway.
    if (process.env.BENCH_WEBHOOK_KEEP !== '1') {
      await dropDatabase(DB_NAME);
    }
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
