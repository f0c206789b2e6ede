import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { sql } from 'kysely';
import { loadConfig } from '../src/config/index.js';
import { Keyring, newId } from '../src/crypto/index.js';
import { exec } from '../src/db/database.js';
import { seedDemo } from '../src/demo.js';
import { createDataKeyJob, createSealer, SWEEP_AFTER_MS } from '../src/domains/keys/index.js';
import { systemContext } from '../src/kernel/context.js';
import { createLogger } from '../src/logging.js';
import { createServices } from '../src/services.js';
import { BENCH, dropDatabase, freshDatabase, runMain } from './lib/env.js';

/**
 * npm run bench:data-keys — data-key rotation throughput on PostgreSQL: seals BENCH_DATA_KEY_VALUES
 * (1,000,000) inbound-source secrets in one org, rotates its key, and times the job's pass
 * (open + seal under the new key + a compare-and-set update per value, BENCH_DATA_KEY_BATCH
 * values per transaction) and its final sweep (a walk that finds nothing left). Baseline in the
 * same run: the same open + seal in memory, no database (the crypto ceiling of one core).
 * A fresh database (BENCH_DATA_KEY_DB, default palisade_bench_datakeys), dropped at the end
 * unless BENCH_DATA_KEY_KEEP=1.
 */
const log = (s: string) => process.stdout.write(`${s}\n`);
const DB_NAME = process.env.BENCH_DATA_KEY_DB ?? 'palisade_bench_datakeys';
const VALUES = Number(process.env.BENCH_DATA_KEY_VALUES ?? 1_000_000);
const BATCH = Number(process.env.BENCH_DATA_KEY_BATCH ?? 1000);
const SEED_BATCH = 5000;
const fmt = (n: number, d = 0) => n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d });


async function main(): Promise<void> {
  log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}; database ${DB_NAME} (fresh); ${fmt(VALUES)} values, batches of ${BATCH}`);
  const opened = await freshDatabase(DB_NAME, 4);
  const { db, owner } = opened;
  // A clock the bench moves past the sweep time instead of waiting for it.
  let offset = 0;
  const clock = { now: () => new Date(Date.now() + offset) };
  const config = loadConfig({
    PALISADE_ENV: 'development', PUBLIC_ORIGIN: BENCH.publicOrigin, PALISADE_KEKS: BENCH.kek, PALISADE_SESSION_SECRET: BENCH.sessionSecret,
    PALISADE_STATE_DIR: '/tmp/palisade-bench-state', LOG_LEVEL: 'warn',
  });
  const services = createServices(config, db, clock, createLogger('warn'));
  try {
    const demo = await seedDemo(db, services);
    const orgId = demo.orgs.find((o) => o.slug === 'acme')?.id ?? '';
    const creator = newId();

    let t = performance.now();
    for (let done = 0; done < VALUES; done += SEED_BATCH) {
      const n = Math.min(SEED_BATCH, VALUES - done);
      await db.withTenant({ orgId }, async (tx) => {
        const list: { id: string; s: string }[] = [];
        for (let i = 0; i < n; i++) {
          const id = newId();
          list.push({ id, s: await services.sealer.seal(tx, { scope: orgId, table: 'inbound_sources', column: 'secret_sealed', row: id }, `whsec_bench_${done + i}_${id}`) });
        }
        await exec(tx, sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
                           select ${orgId}, v.id, 'standard', 'bench', v.s, ${creator}, now() from jsonb_to_recordset(${JSON.stringify(list)}::jsonb) as v(id uuid, s text)`);
      });
    }
    log(`seeded ${fmt(VALUES)} sealed values in ${fmt((performance.now() - t) / 1000, 1)} s`);
    await owner.query('vacuum analyze inbound_sources');

    // Baseline: open + seal in memory (the same keyring code), on a sample.
    const sample = await owner.query<{ id: string; secret_sealed: string }>('select id, secret_sealed from inbound_sources limit 20000');
    const ring = new Keyring([...config.keks]);
    const mem = createSealer(ring);
    t = performance.now();
    await db.withTenant({ orgId }, async (tx) => {
      const active = (await owner.query<{ id: string }>('select id from org_keys where org_id = $1 and active', [orgId]))[0]?.id ?? '';
      const reseal = mem.resealer(tx, active);
      for (const r of sample) await reseal({ scope: orgId, table: 'inbound_sources', column: 'secret_sealed', row: r.id }, r.secret_sealed);
    });
    const baseline = sample.length / ((performance.now() - t) / 1000);
    log(`baseline: open + seal in memory (no write), ${fmt(baseline)} values/s`);

    const job = createDataKeyJob({ db, clock, logger: createLogger('warn'), keys: services.dataKeys, batchSize: BATCH });
    t = performance.now();
    const rotated = await services.dataKeys.rotate(systemContext('bench'), orgId);
    const rotateMs = performance.now() - t;
    log(`rotate (new key, retire the old, count ${fmt(rotated.rotation?.total ?? 0)} values, audit): ${fmt(rotateMs)} ms`);
    t = performance.now();
    await job.drain();
    const passS = (performance.now() - t) / 1000;
    const mid = await services.dataKeys.state(orgId);
    log(`pass: ${fmt(mid.rotation?.done ?? 0)} values re-encrypted in ${fmt(passS, 1)} s = ${fmt((mid.rotation?.done ?? 0) / passS)} values/s (${fmt(((mid.rotation?.done ?? 0) / passS / baseline) * 100, 0)} % of the in-memory baseline)`);
    offset += SWEEP_AFTER_MS;
    t = performance.now();
    await job.drain();
    const sweepS = (performance.now() - t) / 1000;
    const end = await services.dataKeys.state(orgId);
    const left = await owner.query<{ n: number }>(`select count(*)::int as n from inbound_sources where left(secret_sealed, 40) <> $1`, [`v1.${end.activeKey?.id}.`]);
    log(`final sweep (nothing left to move): ${fmt(sweepS, 1)} s; status ${end.rotation?.status}, ${fmt(end.rotation?.done ?? 0)}/${fmt(end.rotation?.total ?? 0)}; values not under the new key: ${left[0]?.n}`);
  } finally {
    await services.close();
    await db.close();
    await owner.close();
    if (process.env.BENCH_DATA_KEY_KEEP !== '1') {
      await dropDatabase(DB_NAME);
    }
  }
}

runMain(main);
