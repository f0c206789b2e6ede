import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { PGlite } from '@electric-sql/pglite';
import { openDatabase, pgliteOwner, pgOwner, type OpenedDatabase } from '../../src/db/open.js';
import { migrate } from '../../src/db/migrate.js';
import { copyDatabaseAcl, migratedPostgres } from './pg-template.js';
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

/** A fresh, migrated database: PGlite in memory, or a new PostgreSQL database per call. */
export async function createTestDatabase(engine: Engine): Promise<TestDatabase> {
  if (engine === 'pglite') {
    const opened = await openDatabase({ kind: 'pglite', dataDir: null, runtimeRole: TEST_RUNTIME_ROLE }, { migrate: true, startFrom: await migratedPglite() });
    return { ...opened, engine, ownerUrl: null, runtimeUrl: null, drop: async () => { await opened.db.close(); } };
  }
  const name = `palisade_t_${randomBytes(6).toString('hex')}`;
  const template = await migratedPostgres(PG_ADMIN_URL, urlFor, TEST_RUNTIME_ROLE);
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
