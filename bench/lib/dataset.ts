import pg from 'pg';
import { hashPassword } from '../../src/domains/identity/index.js';
import { openDatabase } from '../../src/db/open.js';
import { openKeyring, parseKeks } from '../../src/crypto/index.js';
import { exec } from '../../src/db/database.js';
import { insertUserSql } from '../../src/domains/identity/people.js';
import { createSealer } from '../../src/domains/keys/sealer.js';
import { migrationSteps } from '../../src/main.js';
import { BENCH, dbUrl } from './env.js';

export interface BenchUser {
  userId: string;
  email: string;
  orgId: string;
  projectId: string;
}

// v2: accounts' addresses sealed (migration 039), the bench's own list of them in bench.people.
const DATASET_VERSION = `v2-${BENCH.rows}-${BENCH.tenants}`;

/**
 * One PostgreSQL database for every contender: Palisade's schema (migrated by Palisade),
 * 1M assets over 100 tenants, the same rows copied to bench.assets without RLS for the bare
 * and Better Auth routes, and 2 members per tenant. Reused across runs when already seeded.
 */
export async function ensureDataset(log: (s: string) => void): Promise<BenchUser[]> {
  const admin = new pg.Client({ connectionString: BENCH.adminUrl });
  await admin.connect();
  const exists = (await admin.query('select 1 from pg_database where datname = $1', [BENCH.dbName])).rowCount === 1;
  let fresh = !exists;
  if (exists) {
    const c = new pg.Client({ connectionString: dbUrl() });
    await c.connect();
    const v = await c.query(`select to_regclass('bench.meta') as t`);
    const version = v.rows[0]?.t ? (await c.query('select version from bench.meta')).rows[0]?.version : null;
    await c.end();
    if (version !== DATASET_VERSION) {
      await admin.query(`drop database ${BENCH.dbName} with (force)`);
      fresh = true;
    }
  }
  if (fresh) await admin.query(`create database ${BENCH.dbName}`);
  await admin.end();

  const c = new pg.Client({ connectionString: dbUrl() });
  await c.connect();
  // Always migrate: a reused data set still gets the schema the code under test expects.
  const opened = await openDatabase(
    { kind: 'postgres', ownerUrl: dbUrl(), runtimeUrl: dbUrl(BENCH.runtimeRole), runtimeRole: BENCH.runtimeRole, runtimePassword: null, poolSize: 2 },
    // A reused data set's chain heads from before migration 014 are sealed with the bench KEK.
    { migrate: true, keyedSteps: migrationSteps({ keks: parseKeks(BENCH.kek) }) },
  );
  await opened.owner.close();
  if (fresh) {
    log(`seeding ${BENCH.rows.toLocaleString()} assets over ${BENCH.tenants} tenants (once; reused by later runs)`);
    const hash = await hashPassword(BENCH.password);
    await c.query('begin');
    await c.query(`insert into organizations (org_id, slug, name)
                   select gen_random_uuid(), 'bench-' || g, 'Bench ' || g from generate_series(1, ${BENCH.tenants}) g`);
    await c.query(`insert into org_settings (org_id) select org_id from organizations`);
    await c.query(`create temp table proj as
                   select o.org_id, gen_random_uuid() as id, (row_number() over (order by o.slug, p) - 1)::int as rn
                   from organizations o cross join generate_series(1, ${BENCH.projectsPerTenant}) p`);
    await c.query(`insert into projects (org_id, id, name) select org_id, id, 'project-' || rn from proj`);
    // Addresses are sealed as the app seals them (it holds the key): the bench keeps its own list.
    await c.query(`create schema bench`);
    await c.query(`create table bench.people as
                   select gen_random_uuid() as user_id, 'u' || u || '.' || o.slug || '@bench.test' as email, o.org_id
                   from organizations o cross join generate_series(1, ${BENCH.usersPerTenant}) u`);
    const people = (await c.query<{ user_id: string; email: string }>('select user_id, email from bench.people')).rows;
    await c.query('commit');
    const sealer = createSealer(openKeyring({ keks: parseKeks(BENCH.kek), kekProvider: { kind: 'env' } }));
    await opened.db.withSystem('bench: seed accounts', async (tx) => {
      const at = new Date().toISOString();
      for (const p of people) {
        await exec(tx, await insertUserSql(sealer, tx, p.user_id, { email: p.email, name: 'bench' }, { password_hash: hash, password_changed_at: at, email_verified_at: at }));
      }
    });
    await c.query('begin');
    await c.query(`insert into memberships (org_id, user_id, role) select org_id, user_id, 'member' from bench.people`);
    const total = (await c.query<{ n: number }>('select count(*)::int as n from proj')).rows[0]?.n ?? 1;
    await c.query(`insert into assets (org_id, project_id, id, name, kind, created_at)
                   select p.org_id, p.id, gen_random_uuid(), 'asset-' || g, 'host', now() - make_interval(secs => g)
                   from generate_series(0, ${BENCH.rows - 1}) g join proj p on p.rn = g % ${total}`);
    await c.query(`create table bench.assets as select * from assets`);
    await c.query(`create index on bench.assets (org_id, project_id, created_at desc)`);
    await c.query(`create schema better_auth`);
    await c.query(`create table bench.meta (version text)`);
    await c.query(`insert into bench.meta values ($1)`, [DATASET_VERSION]);
    await c.query('commit');
    await c.query('analyze');
  }
  await opened.db.close();
  const users = await c.query<{ user_id: string; email: string; org_id: string; project_id: string }>(
    `select b.user_id, b.email, b.org_id,
            (select p.id from projects p where p.org_id = b.org_id order by p.name limit 1) as project_id
     from bench.people b order by b.email`,
  );
  await c.end();
  return users.rows.map((r) => ({ userId: r.user_id, email: r.email, orgId: r.org_id, projectId: r.project_id }));
}
