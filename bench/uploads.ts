import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import http from 'node:http';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { clamdScanner } from '../src/domains/files/index.js';
import { createTestApp } from '../test/support/app.js';
import { startClamd } from '../test/support/clamd.js';
import { BOUNDARY, MULTIPART_TYPE } from '../test/support/multipart.js';
import { freePort } from '../test/support/redis.js';
import { runMain } from './lib/env.js';

/**
 * npm run bench:uploads — upload throughput (issue 16) on PostgreSQL with a real clamd, for files
 * of 1 MiB and 50 MiB (BENCH_UPLOAD_SIZES, MiB), against two baselines measured in the same run:
 * the same bytes written to disk and fsynced (what storage alone costs), and streamed to clamd's
 * INSTREAM alone (what the scan alone costs). Palisade's figure is a real HTTP multipart upload
 * through the whole pipeline: quota reservation, name and content checks, hashing, sealing,
 * the disk store, clamd, the row and its audit event. Then one 1 GiB upload (BENCH_UPLOAD_BIG_MIB)
 * with the process's RSS sampled every 20 ms: it must stay flat (no buffering of the file).
 * The load generator runs in the same process (it streams from a generator, holding nothing).
 */
const log = (s: string) => process.stdout.write(`${s}\n`);
const MIB = 1024 * 1024;
const SIZES = (process.env.BENCH_UPLOAD_SIZES ?? '1,50').split(',').map(Number);
const BIG = Number(process.env.BENCH_UPLOAD_BIG_MIB ?? 1024);
const ROUNDS = Number(process.env.BENCH_UPLOAD_ROUNDS ?? 5);
const fmt = (n: number, d = 1) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });

/** CSV text, 64 KiB at a time: what a product's users upload, and what the content check accepts as .csv. */
const CHUNK = Buffer.from(Array.from({ length: 1024 }, (_, i) => `host-${String(i).padStart(4, '0')},10.0.${i % 256}.${(i * 7) % 256},high,open\n`).join('').slice(0, 64 * 1024));
function* bytesOf(total: number): Generator<Buffer> {
  for (let sent = 0; sent < total; sent += CHUNK.length) yield total - sent >= CHUNK.length ? CHUNK : CHUNK.subarray(0, total - sent);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

async function diskWrite(dir: string, bytes: number): Promise<void> {
  const path = join(dir, `raw-${Math.random().toString(36).slice(2)}`);
  await pipeline(Readable.from(bytesOf(bytes)), createWriteStream(path, { mode: 0o600 }));
  const fh = await open(path, 'r+');
  await fh.sync();
  await fh.close();
  rmSync(path);
}

function upload(port: number, url: string, cookie: string, bytes: number): Promise<{ status: number; body: string }> {
  const head = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="findings.csv"\r\nContent-Type: text/csv\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port, path: url, method: 'POST',
      headers: { cookie, origin: `http://localhost:${port}`, 'content-type': MULTIPART_TYPE, 'content-length': head.length + bytes + tail.length },
    }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    pipeline(Readable.from((function* () {
      yield head;
      yield* bytesOf(bytes);
      yield tail;
    })()), req).catch(reject);
  });
}

async function main(): Promise<void> {
  log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; ${ROUNDS} rounds per size, medians`);
  const clamd = await startClamd({ streamMaxLength: `${Math.max(BIG, ...SIZES) + 16}M` });
  const dir = mkdtempSync(join(tmpdir(), 'palisade-bench-uploads-'));
  const port = await freePort();
  const settings = {
    PUBLIC_ORIGIN: `http://localhost:${port}`, PALISADE_CLAMD_TIMEOUT_MS: '60000',
    PALISADE_FILE_DIR: join(dir, 'store'), PALISADE_UPLOAD_PLANS: `free=${BIG + 64}M/${(BIG + 64) * 4 + 1024}M`, LOG_LEVEL: 'warn',
  };
  const h = await createTestApp('postgres', { config: { ...settings, PALISADE_CLAMD: `tcp://127.0.0.1:${clamd.port}` } });
  // The same pipeline without the scan (the development opt-out): what Palisade's own work costs.
  const unscannedPort = await freePort();
  const u = await createTestApp('postgres', { config: { ...settings, PUBLIC_ORIGIN: `http://localhost:${unscannedPort}`, PALISADE_UPLOADS_UNSCANNED: 'true' } });
  try {
    await h.built.app.listen({ port, host: '127.0.0.1' });
    await u.built.app.listen({ port: unscannedPort, host: '127.0.0.1' });
    const uUrl = `/api/orgs/${u.orgId('acme')}/projects/${u.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id ?? ''}/files`;
    const uCookie = await u.cookieFor(u.user('acme', 'member').email);
    const acme = h.orgId('acme');
    const project = h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id ?? '';
    const url = `/api/orgs/${acme}/projects/${project}/files`;
    const cookie = await h.cookieFor(h.user('acme', 'member').email);
    const scanner = clamdScanner({ address: clamd.address, timeoutMs: 60_000 });
    const remove = async (id: string) => h.built.app.inject({ method: 'DELETE', url: `${url}/${id}`, headers: { cookie, origin: `http://localhost:${port}` } });

    log('\n| file | raw disk write + fsync | clamd INSTREAM alone | Palisade, unscanned (HTTP, checks, sealing, disk, row) | Palisade (the same and clamd) | × disk | × clamd |');
    log('|---|---:|---:|---:|---:|---:|---:|');
    for (const mib of SIZES) {
      const bytes = mib * MIB;
      const disk: number[] = [];
      const scan: number[] = [];
      const pal: number[] = [];
      const bare: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        disk.push(await timed(() => diskWrite(dir, bytes)));
        scan.push(await timed(async () => {
          const v = await scanner.scan(Readable.from(bytesOf(bytes)));
          if (!v.clean) throw new Error('clamd flagged the bench file');
        }));
        let id = '';
        pal.push(await timed(async () => {
          const res = await upload(port, url, cookie, bytes);
          if (res.status !== 201) throw new Error(`upload answered ${res.status}: ${res.body.slice(0, 300)}`);
          id = (JSON.parse(res.body) as { id: string }).id;
        }));
        await remove(id);
        bare.push(await timed(async () => {
          const res = await upload(unscannedPort, uUrl, uCookie, bytes);
          if (res.status !== 201) throw new Error(`unscanned upload answered ${res.status}: ${res.body.slice(0, 300)}`);
          id = (JSON.parse(res.body) as { id: string }).id;
        }));
        await u.built.app.inject({ method: 'DELETE', url: `${uUrl}/${id}`, headers: { cookie: uCookie, origin: `http://localhost:${unscannedPort}` } });
      }
      const rate = (s: number[]) => mib / median(s);
      log(`| ${mib} MiB | ${fmt(rate(disk))} MiB/s | ${fmt(rate(scan))} MiB/s | ${fmt(rate(bare))} MiB/s | ${fmt(rate(pal))} MiB/s | ${fmt(rate(pal) / rate(disk), 2)} | ${fmt(rate(pal) / rate(scan), 2)} |`);
    }

    // Memory: one large upload, RSS sampled throughout.
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    let res: { status: number; body: string } = { status: 0, body: '' };
    const seconds = await timed(async () => (res = await upload(port, url, cookie, BIG * MIB)));
    clearInterval(timer);
    if (res.status !== 201) throw new Error(`the ${BIG} MiB upload answered ${res.status}: ${res.body.slice(0, 300)}`);
    await remove((JSON.parse(res.body) as { id: string }).id);
    log(`\n${BIG} MiB upload: ${fmt(BIG / seconds)} MiB/s; RSS ${fmt(before / MIB)} MiB before, peak ${fmt(peak / MIB)} MiB (+${fmt((peak - before) / MIB)} MiB for ${BIG} MiB streamed)`);
  } finally {
    await u.close();
    await h.close();
    await clamd.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

runMain(main);
