import { ensureDataset } from './lib/dataset.js';
import { BENCH, dbUrl, runMain } from './lib/env.js';
import { mutation } from './lib/micro.js';
import { openDatabase } from '../src/db/open.js';

/**
 * npm run bench:mutation — the mutation figures of `npm run bench` alone: a plain insert, the
 * secured mutation (2 sealed fields + the chained audit event) spread over every org, and the
 * same 16 writers in one org (its chain head serialises their appends).
 */
runMain(async () => {
  const users = await ensureDataset((s) => process.stdout.write(`${s}\n`));
  const { db, owner } = await openDatabase(
    { kind: 'postgres', ownerUrl: dbUrl(), runtimeUrl: dbUrl(BENCH.runtimeRole), runtimeRole: BENCH.runtimeRole, runtimePassword: null, poolSize: 16 },
    { migrate: false },
  );
  try {
    const m = await mutation(db, users, BENCH.seconds);
    const orgs = new Set(users.map((u) => u.orgId)).size;
    const row = (what: string, ops: number) => process.stdout.write(`| ${what} | ${Math.round(ops).toLocaleString('en')} | ${(ops / m.plain).toFixed(2)} |\n`);
    process.stdout.write(`16 writers over ${orgs} orgs, ${BENCH.seconds} s each\n| step | ops/s | × plain |\n|---|---:|---:|\n`);
    row('plain insert (bench copy: no RLS, no foreign key, one index; autocommit)', m.plain);
    row('+ Palisade\u2019s table in a tenant transaction (RLS, project foreign key, two indexes)', m.tenant);
    row('+ two sealed fields', m.sealed);
    row('+ the chained audit event (the secured mutation)', m.secured);
    row('the secured mutation, all 16 writers in one org (one chain head)', m.oneOrg);
  } finally {
    await db.close();
    await owner.close();
  }
});
