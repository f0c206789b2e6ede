import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { sql } from 'kysely';
import { loadConfig } from '../src/config/index.js';
import { archiveOpener, newArchiveKey, newId } from '../src/crypto/index.js';
import { exec, one } from '../src/db/database.js';
import { seedDemo } from '../src/demo.js';
import { archiveKeyRef, archivePath, createArchiveWriter, createExportJob } from '../src/domains/exports/index.js';
import { createLogger } from '../src/logging.js';
import { createServices } from '../src/services.js';
import { BENCH, dropDatabase, freshDatabase, runMain } from './lib/env.js';

/**
 * npm run bench:export — tenant export throughput and memory on PostgreSQL: one org with
 * BENCH_EXPORT_ROWS (1,000,000) assets inserted in bulk beside the demo data, exported by the job
 * in batches of BENCH_EXPORT_BATCH rows (one transaction, one encrypted tar record each). Prints
 * rows/s, the archive's size, the peak RSS while exporting (sampled, and the process's max RSS)
 * against the RSS before it started, then the download path: the archive decrypted as it streams.
 * Baseline in the same run: the same rows read by one `select to_jsonb(...)` walk in the same
 * batches with nothing written (what the database alone costs).
 * A fresh database (BENCH_EXPORT_DB, default palisade_bench_export), dropped at the end.
 */
const log = (s: string) => process.stdout.write(`${s}\n`);
const DB_NAME = process.env.BENCH_EXPORT_DB ?? 'palisade_bench_export';
const ROWS = Number(process.env.BENCH_EXPORT_ROWS ?? 1_000_000);
const BATCH = Number(process.env.BENCH_EXPORT_BATCH ?? 5000);
const DIR = process.env.BENCH_EXPORT_DIR ?? '/tmp/palisade-bench-export';
const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });
const mib = (b: number) => `${fmt(b / 1048576, 1)} MiB`;


/** Samples RSS every 20 ms while `fn` runs; returns its time and the peak seen. */
async function measured<T>(fn: () => Promise<T>): Promise<{ value: T; seconds: number; peakRss: number }> {
  let peak = process.memoryUsage().rss;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  const t = performance.now();
  try {
    const value = await fn();
    return { value, seconds: (performance.now() - t) / 1000, peakRss: Math.max(peak, process.memoryUsage().rss) };
  } finally {
    clearInterval(timer);
  }
}

async function main(): Promise<void> {
  log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; database ${DB_NAME} (fresh); ${fmt(ROWS)} assets, batches of ${BATCH}`);
  const opened = await freshDatabase(DB_NAME, 4);
  const { db, owner } = opened;
  const config = loadConfig({
    PALISADE_ENV: 'development', PUBLIC_ORIGIN: BENCH.publicOrigin, PALISADE_KEKS: BENCH.kek, PALISADE_SESSION_SECRET: BENCH.sessionSecret,
    PALISADE_STATE_DIR: '/tmp/palisade-bench-state', PALISADE_EXPORT_DIR: DIR, LOG_LEVEL: 'warn',
  });
  const logger = createLogger('warn');
  const services = createServices(config, db, { now: () => new Date() }, logger);
  try {
    const demo = await seedDemo(db, services);
    const orgId = demo.orgs.find((o) => o.slug === 'acme')?.id ?? '';
    const t = performance.now();
    await owner.query(
      `insert into assets (org_id, project_id, id, name, kind)
       select $1, (select id from projects where org_id = $1 order by id limit 1), gen_random_uuid(), 'asset ' || g, 'host' from generate_series(1, $2) g`,
      [orgId, ROWS],
    );
    await owner.query('vacuum analyze assets');
    log(`seeded ${fmt(ROWS)} assets in ${fmt((performance.now() - t) / 1000, 1)} s`);

    // Baseline: the database's share, the same keyset walk with nothing written.
    const base = await measured(async () => {
      let n = 0;
      let after: string | null = null;
      for (;;) {
        // Two statements, not one with `$after is null or …`: that OR would keep the index out of the plan.
        const cond = after ? sql`and (x.org_id, x.id) > (${orgId}::uuid, ${after}::uuid)` : sql``;
        const page: { j: string; id: string }[] = await db.withTenant({ orgId, projectIds: null }, (tx) =>
          sql<{ j: string; id: string }>`select to_jsonb(x)::text as j, x.id::text as id from assets x where x.org_id = ${orgId} ${cond}
              order by x.org_id, x.id limit ${BATCH}`.execute(tx).then((r) => r.rows),
        );
        n += page.length;
        if (page.length < BATCH) return n;
        after = page[page.length - 1]?.id ?? null;
      }
    });
    log(`baseline: read ${fmt(base.value)} rows as JSON in batches, nothing written: ${fmt(base.value / base.seconds)} rows/s`);

    // The export, as the job runs it (the request's row and key, as the service writes them).
    const exportId = newId();
    await db.withTenant({ orgId, projectIds: null }, async (tx) => {
      const sealed = await services.sealer.seal(tx, archiveKeyRef(orgId, exportId), newArchiveKey().toString('base64'));
      await exec(tx, sql`insert into org_exports (org_id, id, requested_by, state, created_at, key_sealed) values (${orgId}, ${exportId}, ${newId()}, 'queued', now(), ${sealed})`);
    });
    await db.withSystem('bench', (tx) => exec(tx, sql`insert into export_due (org_id, due_at) values (${orgId}, now()) on conflict (org_id) do update set due_at = now()`));
    const archives = createArchiveWriter({ db, sealer: services.sealer, audit: services.audit, clock: { now: () => new Date() }, signing: services.exportSigning, dir: DIR, retentionDays: 7, batchSize: BATCH });
    const job = createExportJob({ db, clock: { now: () => new Date() }, logger, archives });
    global.gc?.();
    const before = process.memoryUsage().rss;
    const run = await measured(() => job.drain());
    const done = await db.withTenant({ orgId, projectIds: null }, (tx) =>
      one<{ state: string; rows_done: string; bytes_written: string }>(tx, sql`select state, rows_done::text, bytes_written::text from org_exports where org_id = ${orgId} and id = ${exportId}`),
    );
    const rows = Number(done?.rows_done);
    log(`export: ${done?.state}, ${fmt(rows)} rows in ${fmt(run.seconds, 1)} s = ${fmt(rows / run.seconds)} rows/s (${fmt((rows / run.seconds / (base.value / base.seconds)) * 100)} % of the read-only baseline); archive ${mib(Number(done?.bytes_written))} encrypted`);
    log(`memory: RSS ${mib(before)} before, peak ${mib(run.peakRss)} while exporting (+${mib(run.peakRss - before)}); process max RSS ${mib(process.resourceUsage().maxRSS * 1024)}`);

    // The download path: decrypt as it streams (what the link's GET sends), into nothing.
    const key = await db.withTenant({ orgId, projectIds: null }, async (tx) => {
      const r = await one<{ key_sealed: string }>(tx, sql`select key_sealed from org_exports where org_id = ${orgId} and id = ${exportId}`);
      return Buffer.from(await services.sealer.open(tx, archiveKeyRef(orgId, exportId), r?.key_sealed ?? ''), 'base64');
    });
    const file = archivePath(DIR, orgId, exportId);
    let plain = 0;
    const dl = await measured(() => pipeline(createReadStream(file), archiveOpener(key, exportId), new Writable({ write: (c: Buffer, _e, cb) => { plain += c.length; cb(); } })));
    log(`download: ${mib(plain)} of tar decrypted in ${fmt(dl.seconds, 2)} s = ${mib(plain / dl.seconds)}/s, peak RSS ${mib(dl.peakRss)}; on disk ${mib((await stat(file)).size)}`);
  } finally {
    await services.close();
    await db.close();
    await owner.close();
    await rm(DIR, { recursive: true, force: true });
    await dropDatabase(DB_NAME);
  }
}

runMain(main);
