import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/index.js';
import { KyselyDatabase, type Database, type Schema } from './database.js';
import { PGliteDialect } from './pglite-dialect.js';
import { migrate, type OwnerConnection } from './migrate.js';

// int8 (audit sequence numbers, counts) as JS numbers: they stay far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export type DatabaseConfig = Config['database'];

export interface OpenedDatabase {
  db: Database;
  /** Owner access for migrations and operator tools (audit verify); never handed to request code. */
  owner: OwnerConnection & { close(): Promise<void> };
}

function pgliteOwner(client: PGlite): OwnerConnection & { close(): Promise<void> } {
  return {
    async script(text) {
      await client.exec(text);
    },
    async query<R>(text: string, params: unknown[] = []) {
      return (await client.query<R>(text, params)).rows;
    },
    async close() {},
  };
}

export function pgOwner(url: string): OwnerConnection & { close(): Promise<void> } {
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => undefined);
  return {
    async script(text) {
      await pool.query(text);
    },
    async query<R>(text: string, params: unknown[] = []) {
      return (await pool.query(text, params)).rows as R[];
    },
    close: () => pool.end(),
  };
}

export async function openDatabase(cfg: DatabaseConfig, opts: { migrate: boolean }): Promise<OpenedDatabase> {
  if (cfg.kind === 'pglite') {
    if (cfg.dataDir) mkdirSync(cfg.dataDir, { recursive: true });
    const client = cfg.dataDir ? await PGlite.create(cfg.dataDir) : await PGlite.create();
    const owner = pgliteOwner(client);
    if (opts.migrate) await migrate(owner, { runtimeRole: cfg.runtimeRole, runtimePassword: null, login: false });
    const kysely = new Kysely<Schema>({ dialect: new PGliteDialect(client) });
    const db = new KyselyDatabase('pglite', kysely, cfg.runtimeRole, () => client.close());
    return { db, owner };
  }
  const owner = pgOwner(cfg.ownerUrl);
  if (opts.migrate) {
    await migrate(owner, { runtimeRole: cfg.runtimeRole, runtimePassword: cfg.runtimePassword, login: true });
  }
  const pool = new pg.Pool({ connectionString: cfg.runtimeUrl, max: cfg.poolSize, idleTimeoutMillis: 30_000 });
  // A dropped connection (database restart) must not crash the process; the next query fails
  // with a 503 and the pool reconnects.
  pool.on('error', () => undefined);
  const kysely = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  const db = new KyselyDatabase('postgres', kysely, cfg.runtimeRole, async () => undefined);
  return { db, owner };
}
