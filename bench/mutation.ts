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
    process.stdout.write(`plain insert ${Math.round(m.plain)} ops/s; secured over ${orgs} orgs ${Math.round(m.secured)} ops/s (${(m.secured / m.plain).toFixed(2)} ×); `
      + `secured in one org ${Math.round(m.oneOrg)} ops/s (${(m.oneOrg / m.secured).toFixed(2)} × spread)\n`);
  } finally {
    await db.close();
    await owner.close();
  }
});
