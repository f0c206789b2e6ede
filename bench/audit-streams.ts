import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config/index.js';
import { newId } from '../src/crypto/index.js';
import { exec } from '../src/db/database.js';
import { seedDemo } from '../src/demo.js';
import {
  createStreamSender, createStreamWorker, createSyslogTransport, streamSecretRef, type StreamWorker,
} from '../src/domains/audit-streams/index.js';
import { createWebhookTransport, newWebhookSecret } from '../src/domains/webhooks/index.js';
import { systemClock } from '../src/kernel/clock.js';
import { systemContext } from '../src/kernel/context.js';
import { createLogger } from '../src/logging.js';
import { NdjsonReceiver, SyslogReceiver } from '../test/audit-streams/receivers.js';
import { BENCH, dropDatabase, freshDatabase, runMain } from './lib/env.js';
import { percentile } from './lib/load.js';

/**
 * npm run bench:audit-streams — audit streaming on PostgreSQL (issue 14):
 *  1. throughput: N events already in the trail, drained by a worker to a loopback HTTP receiver
 *     (NDJSON batches of 500), to syslog over TCP and to syslog over TLS (octet-counted RFC 5424);
 *     the baseline is the rate at which the same events were appended (what a stream must keep up with);
 *  2. lag: events appended at a steady rate, one per transaction, while the worker runs as
 *     `serve` runs it (woken in-process by each append) and as a separate `palisade worker`
 *     runs it (no wake-up: a poll every second); time from commit to receipt, p50 and p99.
 * The receivers run in this process (they share its CPU with the worker: the figures are a floor).
 * A fresh database every run (BENCH_STREAM_DB, default palisade_bench_streams), dropped at the end.
 */
const log = (s: string) => process.stdout.write(`${s}\n`);
const DB_NAME = process.env.BENCH_STREAM_DB ?? 'palisade_bench_streams';
const EVENTS = Number(process.env.BENCH_STREAM_EVENTS ?? 20_000);
const LIVE_RATE = Number(process.env.BENCH_STREAM_LIVE_RATE ?? 100);
const LIVE_SECONDS = Number(process.env.BENCH_STREAM_LIVE_SECONDS ?? 5);

const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));


function selfSigned(): { key: Buffer; cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-bench-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const opened = await freshDatabase(DB_NAME, BENCH.poolSize);
  const config = loadConfig({
    PALISADE_ENV: 'development', PUBLIC_ORIGIN: BENCH.publicOrigin, PALISADE_KEKS: BENCH.kek, PALISADE_SESSION_SECRET: BENCH.sessionSecret,
    PALISADE_STATE_DIR: '/tmp/palisade-bench-state', PALISADE_DB_POOL_SIZE: String(BENCH.poolSize), PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true', LOG_LEVEL: 'warn',
  });
  const logger = createLogger('warn');
  const built = await buildApp({ config, db: opened.db, clock: systemClock, logger });
  const demo = await seedDemo(opened.db, built.services);
  const orgId = demo.orgs.find((o) => o.slug === 'acme')?.id ?? '';
  const ownerId = (await opened.owner.query<{ user_id: string }>(`select user_id::text as user_id from memberships where org_id = $1 and role = 'owner' limit 1`, [orgId]))[0]?.user_id ?? '';
  const { db } = opened;
  const { audit, sealer, auditReader } = built.services;
  const cert = selfSigned();
  const http = new NdjsonReceiver();
  const base = await http.start();
  const syslog = new SyslogReceiver();
  const syslogPort = await syslog.start();
  const tlsSyslog = new SyslogReceiver(cert);
  const tlsPort = await tlsSyslog.start();
  const sender = createStreamSender({
    http: createWebhookTransport({ allowLoopback: true }), syslog: createSyslogTransport({ allowLoopback: true, ca: cert.cert, closeGraceMs: 1000 }),
    clock: systemClock, hostname: 'bench.palisade.test',
  });
  const worker = (pollMs: number): StreamWorker => createStreamWorker({ db, clock: systemClock, sealer, reader: auditReader, sender, logger, pollMs });

  const head = async () => Number((await opened.owner.query<{ seq: string }>('select seq::text from audit_heads where org_id = $1', [orgId]))[0]?.seq ?? 0);
  /** One stream, enabled, its cursor at the head (or `cursor`); every other stream off. */
  async function stream(dest: { kind: 'https'; url: string } | { kind: 'syslog'; host: string; port: number; tls: boolean }, cursor?: number): Promise<void> {
    const at = await head();
    await opened.owner.query('delete from audit_streams');
    await db.withTenant({ orgId }, async (tx) => {
      const id = newId();
      const secret = dest.kind === 'https' ? await sealer.seal(tx, streamSecretRef(orgId, id), newWebhookSecret()) : null;
      await exec(tx, sql`insert into audit_streams (org_id, id, kind, url, host, port, tls, secret_sealed, cursor_seq, created_by, created_at, updated_at)
        values (${orgId}, ${id}, ${dest.kind}, ${dest.kind === 'https' ? dest.url : null}, ${dest.kind === 'syslog' ? dest.host : null},
          ${dest.kind === 'syslog' ? dest.port : null}, ${dest.kind === 'syslog' ? dest.tls : true}, ${secret}, ${cursor ?? at}, ${ownerId}, now(), now())`);
      await exec(tx, sql`insert into audit_stream_orgs (org_id, check_at) values (${orgId}, now()) on conflict (org_id) do update set check_at = now()`);
    });
  }

  // 1. Throughput.
  log(`audit streaming — ${fmt(EVENTS)} events, PostgreSQL, receivers on loopback in this process`);
  const start = await head();
  let t0 = performance.now();
  for (let i = 0; i < EVENTS; i += 100) {
    await db.withTenant({ orgId }, async (tx) => {
      for (let j = i; j < Math.min(EVENTS, i + 100); j++) await audit.append(tx, orgId, systemContext('bench'), { action: 'org.updated', details: { n: j } });
    });
  }
  const appendRate = EVENTS / ((performance.now() - t0) / 1000);
  log(`  append (baseline, 100 events a transaction):     ${fmt(appendRate)} events/s`);
  const targets = [
    ['HTTPS NDJSON (plain http on loopback)', { kind: 'https' as const, url: `${base}/in` }, () => http.events().length],
    ['syslog TCP (RFC 5424, octet counting)', { kind: 'syslog' as const, host: '127.0.0.1', port: syslogPort, tls: false }, () => syslog.messages.length],
    ['syslog TLS', { kind: 'syslog' as const, host: '127.0.0.1', port: tlsPort, tls: true }, () => tlsSyslog.messages.length],
  ] as const;
  const throughput: Record<string, number> = {};
  for (const [name, dest, count] of targets) {
    await stream(dest, start);
    const w = worker(0);
    t0 = performance.now();
    const sent = await w.drain();
    const s = (performance.now() - t0) / 1000;
    const got = count();
    throughput[name] = sent / s;
    log(`  ${name.padEnd(48)} ${fmt(sent / s)} events/s  (${fmt(got)} received, ${fmt(s, 2)} s, ${fmt(sent / s / appendRate, 2)} × append)`);
  }

  // 2. Lag: commit → receipt, one event per transaction at a steady rate.
  async function live(label: string, w: StreamWorker, viaServices: boolean): Promise<void> {
    http.batches.length = 0;
    await stream({ kind: 'https', url: `${base}/live` });
    if (viaServices) built.services.streamWorker.streamsChanged(orgId);
    w.start();
    await sleep(300);
    const committed = new Map<number, number>();
    const n = LIVE_RATE * LIVE_SECONDS;
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      const due = t + (i * 1000) / LIVE_RATE;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      await db.withTenant({ orgId }, (tx) => audit.append(tx, orgId, systemContext('bench'), { action: 'org.updated', details: { n: 1_000_000 + i } }));
      committed.set(1_000_000 + i, Date.now());
    }
    const deadline = Date.now() + 15_000;
    const arrived = () => http.batches.flatMap((b) => b.body.split('\n').filter(Boolean).map((l) => ({ e: JSON.parse(l) as { details: { n?: number } }, at: b.receivedAt })));
    while (arrived().filter((a) => committed.has(a.e.details.n ?? -1)).length < n && Date.now() < deadline) await sleep(20);
    await w.stop();
    const lags = arrived().filter((a) => committed.has(a.e.details.n ?? -1)).map((a) => a.at - (committed.get(a.e.details.n ?? -1) ?? 0));
    log(`  ${label.padEnd(48)} p50 ${fmt(percentile(lags, 50))} ms  p99 ${fmt(percentile(lags, 99))} ms  max ${fmt(Math.max(...lags))} ms  (${fmt(lags.length)}/${fmt(n)} received, ${http.batches.length} batches)`);
  }
  log(`lag, ${LIVE_RATE} events/s for ${LIVE_SECONDS} s, one per transaction, to the HTTPS receiver:`);
  await live('in the serving process (woken by each append)', built.services.streamWorker, true);
  await live('separate worker (poll every 1 s, no wake-up)', worker(1000), false);

  await http.close();
  await syslog.close();
  await tlsSyslog.close();
  await built.app.close();
  await opened.db.close();
  await opened.owner.close();
  await dropDatabase(DB_NAME);
}

runMain(main);
