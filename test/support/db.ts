import pg from 'pg';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { openDatabase, pgliteOwner, pgOwner, type OpenedDatabase } from '../../src/db/open.js';
import { listMigrations, migrate } from '../../src/db/migrate.js';
import type { Engine } from '../../src/db/database.js';

/** Engines the suite runs its database tests against; TEST_ENGINES narrows it. */
export const ENGINES: Engine[] = (process.env.TEST_ENGINES ?? 'pglite,postgres')
  .split(',')
  .map((s) => s.trim())
  .filter((s): s is Engine => s === 'pglite' || s === 'postgres');

export const PG_ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
export const TEST_RUNTIME_ROLE = 'palisade_test_app';

export interface TestDatabase extends OpenedDatabase {
  engine: Engine;
  ownerUrl: string | null;
  runtimeUrl: string | null;
  drop(): Promise<void>;
}

function urlFor(dbName: string, user = 'postgres'): string {
  const u = new URL(PG_ADMIN_URL);
  u.pathname = `/${dbName}`;
  u.username = user;
  return u.toString();
}

let pgliteTemplate: Promise<Blob> | null = null;

/**
 * A migrated embedded database, dumped once per worker process: each test database starts from
 * it (about 1 s) rather than from PGlite's initdb and every migration (3–5 s). Migrations are
 * still run over it (none is pending), as the server would on start.
 */
function migratedPglite(): Promise<Blob> {
  pgliteTemplate ??= (async () => {
    const client = await PGlite.create();
    try {
      await migrate(pgliteOwner(client), { runtimeRole: TEST_RUNTIME_ROLE, runtimePassword: null, login: false });
      return await client.dumpDataDir('none');
    } finally {
      await client.close();
    }
  })();
  return pgliteTemplate;
}

/**
 * A test database is thrown away, never recovered after a crash of PostgreSQL: its commits need
 * not wait for the WAL's fsync (the suite's PostgreSQL half spent much of its time there).
 * Nothing the code under test does changes: visibility, locks and NOTIFY are as on commit. A
 * database's settings are not copied from its template, so each one is set.
 */
async function throwaway(admin: pg.Client, name: string): Promise<void> {
  await admin.query(`alter database ${name} set synchronous_commit = off`);
}

/**
 * CREATE DATABASE … TEMPLATE copies the template's contents but not what is kept about the
 * database itself in the shared catalog: its privileges (migration 014 revokes TEMPORARY from
 * PUBLIC there) would be the defaults again, and no migration is left to run to set them. The
 * copy takes the template's, exactly, so it is the database migrating would have made.
 */
async function copyDatabaseAcl(admin: pg.Client, template: string, name: string): Promise<void> {
  await admin.query(`update pg_database set datacl = (select datacl from pg_database where datname = $1) where datname = $2`, [template, name]);
}

/** What a migrated database depends on: the migrations and the code that applies them. */
function migrationsDigest(): string {
  const h = createHash('sha256');
  for (const m of listMigrations()) h.update(m.version).update('\0').update(m.text).update('\0');
  for (const f of ['../../src/db/migrate.ts', '../../src/db/open.ts']) h.update(readFileSync(new URL(f, import.meta.url)));
  return h.update(TEST_RUNTIME_ROLE).digest('hex').slice(0, 16);
}

let postgresTemplate: Promise<string> | null = null;

/**
 * A migrated PostgreSQL database that each test database is copied from (CREATE DATABASE …
 * TEMPLATE, about 0.1 s) rather than migrated anew (about 0.35 s). Named after the migrations it
 * holds, so that every worker and later runs share it and a changed migration makes a new one;
 * built under a name of its own and renamed when complete, so that nothing copies a half-migrated
 * one. Migrations are still run over each copy (none is pending), as the server would on start.
 */
function migratedPostgres(): Promise<string> {
  postgresTemplate ??= (async () => {
    const name = `palisade_tpl_${migrationsDigest()}`;
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    try {
      // Workers starting together build it once: the others wait here, then find it.
      await admin.query('select pg_advisory_lock(727275)');
      const found = await admin.query('select 1 from pg_database where datname = $1', [name]);
      if (found.rowCount === 0) {
        const building = `${name}_building`;
        await admin.query(`drop database if exists ${building} with (force)`);
        await admin.query(`create database ${building}`);
        await throwaway(admin, building);
        const url = urlFor(building);
        const opened = await openDatabase(
          { kind: 'postgres', ownerUrl: url, runtimeUrl: urlFor(building, TEST_RUNTIME_ROLE), runtimeRole: TEST_RUNTIME_ROLE, runtimePassword: null, poolSize: 1 },
          { migrate: true },
        );
        await opened.db.close();
        await opened.owner.close();
        await admin.query(`alter database ${building} rename to ${name}`);
        // Templates of earlier migrations are never copied again.
        const stale = await admin.query<{ datname: string }>(`select datname from pg_database where datname like 'palisade\\_tpl\\_%' and datname <> $1`, [name]);
        for (const r of stale.rows) await admin.query(`drop database if exists ${r.datname} with (force)`).catch(() => undefined);
      }
      return name;
    } finally {
      await admin.query('select pg_advisory_unlock(727275)').catch(() => undefined);
      await admin.end();
    }
  })();
  return postgresTemplate;
}

/** A fresh, migrated database: PGlite in memory, or a new PostgreSQL database per call. */
export async function createTestDatabase(engine: Engine): Promise<TestDatabase> {
  if (engine === 'pglite') {
    const opened = await openDatabase({ kind: 'pglite', dataDir: null, runtimeRole: TEST_RUNTIME_ROLE }, { migrate: true, startFrom: await migratedPglite() });
    return { ...opened, engine, ownerUrl: null, runtimeUrl: null, drop: async () => { await opened.db.close(); } };
  }
  const name = `palisade_t_${randomBytes(6).toString('hex')}`;
  const template = await migratedPostgres();
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  await admin.connect();
  try {
    await admin.query(`create database ${name} template ${template}`);
    await copyDatabaseAcl(admin, template, name);
    await throwaway(admin, name);
  } finally {
    await admin.end();
  }
  const ownerUrl = urlFor(name);
  const runtimeUrl = urlFor(name, TEST_RUNTIME_ROLE);
  const opened = await openDatabase(
    { kind: 'postgres', ownerUrl, runtimeUrl, runtimeRole: TEST_RUNTIME_ROLE, runtimePassword: null, poolSize: 8 },
    { migrate: true },
  );
  return {
    ...opened,
    engine,
    ownerUrl,
    runtimeUrl,
    drop: async () => {
      await opened.db.close();
      await opened.owner.close();
      const a = pgOwner(PG_ADMIN_URL);
      await a.script(`drop database if exists ${name} with (force)`).catch(() => undefined);
      await a.close();
    },
  };
}
