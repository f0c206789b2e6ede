import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { Keyring, newId, type Kek } from '../src/crypto/index.js';
import { openPkcs11Provider } from '../src/crypto/pkcs11.js';
import type { OwnerConnection } from '../src/db/migrate.js';
import { openDatabase, type OpenedDatabase } from '../src/db/open.js';
import { rotateKek } from '../src/domains/keys/index.js';
import { createKek, initToken, softhsmMissing, SOFTHSM_MODULE, startSoftHsm } from '../test/support/softhsm.js';
import { BENCH, dbUrl, runMain } from './lib/env.js';

/**
 * npm run bench:kek-rotation — `palisade keys rotate-kek` throughput (data keys rewrapped per
 * second) over BENCH_KEK_ORGS orgs (default 10,000) with one data key each, beside its ceiling:
 * the same rewraps in process with no database. On PostgreSQL and PGlite with env KEKs, and on
 * PostgreSQL with the KEK in a SoftHSM2 token (wrapping inside the token) when softhsm2 is here.
 */

const ORGS = Number(process.env.BENCH_KEK_ORGS ?? 10_000);
const K1: Kek = { id: 'k1', key: Buffer.alloc(32, 1) };
const K2: Kek = { id: 'k2', key: Buffer.alloc(32, 2) };
const DB = 'palisade_bench_kek';
const RUNTIME = 'palisade_bench_app';

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');

/** ORGS orgs, each with one data key wrapped by `kek`, written in bulk by the owner. */
async function seed(owner: OwnerConnection, keyring: Keyring): Promise<void> {
  const chunk = 2000;
  for (let i = 0; i < ORGS; i += chunk) {
    const ids = Array.from({ length: Math.min(chunk, ORGS - i) }, () => newId());
    const keys = ids.map((org) => keyring.newDataKey(org, newId()));
    await owner.query(
      `with o as (insert into organizations (org_id, slug, name)
                  select id, 'kek-' || ($5::int + n), 'Kek ' || ($5::int + n) from unnest($1::uuid[]) with ordinality as x(id, n) returning org_id)
       insert into org_keys (org_id, id, kek_id, wrapped) select * from unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])`,
      [ids, keys.map((k) => k.id), keys.map((k) => k.kekId), keys.map((k) => k.wrapped), i],
    );
  }
}

/** The ceiling: unwrap + wrap of the same number of keys, in process, no database. */
function inProcess(keyring: Keyring, from: Keyring): number {
  const keys = Array.from({ length: Math.min(ORGS, 5000) }, (_, i) => ({ scope: `s${i}`, w: from.newDataKey(`s${i}`, newId()) }));
  const t0 = performance.now();
  for (const k of keys) keyring.rewrap(k.scope, k.w);
  return keys.length / ((performance.now() - t0) / 1000);
}

async function timed(name: string, owner: OwnerConnection, keyring: Keyring): Promise<number> {
  const r = await rotateKek({ owner, keyring, newKek: keyring.activeKekId });
  if (r.rewrapped !== ORGS) throw new Error(`${name}: rewrapped ${r.rewrapped} of ${ORGS}`);
  process.stdout.write(`  ${name}: ${r.seconds.toFixed(2)} s, of which ${r.checkSeconds.toFixed(2)} s checking every key before the first write\n`);
  return r.rewrapped / r.seconds;
}

async function postgres(): Promise<OpenedDatabase & { drop(): Promise<void> }> {
  const admin = new pg.Client({ connectionString: BENCH.adminUrl });
  await admin.connect();
  await admin.query(`drop database if exists ${DB} with (force)`);
  await admin.query(`create database ${DB}`);
  await admin.end();
  const opened = await openDatabase(
    { kind: 'postgres', ownerUrl: dbUrl('postgres', DB), runtimeUrl: dbUrl(RUNTIME, DB), runtimeRole: RUNTIME, runtimePassword: null, poolSize: 2 },
    { migrate: true },
  );
  return {
    ...opened,
    drop: async () => {
      await opened.db.close();
      await opened.owner.close();
      const a = new pg.Client({ connectionString: BENCH.adminUrl });
      await a.connect();
      await a.query(`drop database if exists ${DB} with (force)`);
      await a.end();
    },
  };
}

async function main(): Promise<void> {
  const rows: [string, number][] = [];
  const hsmMissing = softhsmMissing();
  let hsmKeyring: Keyring | null = null;
  if (!hsmMissing) {
    startSoftHsm();
    initToken('bench', '1234');
    createKek('bench', '1234', 'hsm-1');
    createKek('bench', '1234', 'k2', { value: K2.key });
    hsmKeyring = new Keyring(openPkcs11Provider({ module: SOFTHSM_MODULE, token: 'bench', pin: '1234', keyLabels: ['hsm-1', 'k2'] }));
  }
  rows.push(['in process, env KEKs (ceiling)', inProcess(new Keyring([K2, K1]), new Keyring([K1]))]);
  if (hsmKeyring) rows.push(['in process, SoftHSM2 KEK (ceiling)', inProcess(hsmKeyring, new Keyring([K2]))]);

  const pgDb = await postgres();
  try {
    await seed(pgDb.owner, new Keyring([K1]));
    rows.push(['rotate-kek, PostgreSQL, env KEKs', await timed('pg env', pgDb.owner, new Keyring([K2, K1]))]);
    if (hsmKeyring) rows.push(['rotate-kek, PostgreSQL, SoftHSM2 KEK', await timed('pg hsm', pgDb.owner, hsmKeyring)]);
  } finally {
    await pgDb.drop();
  }
  const lite = await openDatabase({ kind: 'pglite', dataDir: null, runtimeRole: RUNTIME }, { migrate: true });
  try {
    await seed(lite.owner, new Keyring([K1]));
    rows.push(['rotate-kek, PGlite, env KEKs', await timed('pglite env', lite.owner, new Keyring([K2, K1]))]);
  } finally {
    await lite.db.close();
    await lite.owner.close();
  }
  hsmKeyring?.close();

  process.stdout.write(`\nKEK rotation, ${fmt(ORGS)} orgs with one data key each (rewrapped keys per second)\n`);
  const ceiling = rows[0]?.[1] ?? 1;
  for (const [name, rate] of rows) process.stdout.write(`  ${name.padEnd(42)} ${fmt(rate).padStart(10)} keys/s  (${(rate / ceiling).toFixed(3)} × env in process)\n`);
  if (hsmMissing) process.stdout.write(`  (SoftHSM2 rows skipped: ${hsmMissing})\n`);
}

runMain(main);
