import { existsSync, mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, PostgresDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import type { Config } from '../config/index.js';
import { AuthCache, authNoticeTag } from './auth-cache.js';
import { KyselyDatabase, type Database, type Schema } from './database.js';
import pgUtils from 'pg/lib/utils.js';
import { WITH_NEXT_STATEMENT, WRITE_WITH_NEXT } from './pinned.js';
import { InvariantError } from '../kernel/errors.js';
import { PGliteDialect } from './pglite-dialect.js';
import { pgListen, pgliteListen } from './listen.js';
import { lockDataDir } from './data-dir-lock.js';
import { migrate, type MigrateOptions, type OwnerConnection } from './migrate.js';

// int8 (audit sequence numbers, counts) as JS numbers: they stay far below 2^53.
pg.types.setTypeParser(20, (v) => Number(v));

export type DatabaseConfig = Config['database'];

export interface OpenedDatabase {
  db: Database;
  /** Owner access for migrations and operator tools (audit verify); never handed to request code. */
  owner: OwnerConnection & { close(): Promise<void> };
}

/** Owner access to an embedded database (also what the test suite migrates its template with). */
export function pgliteOwner(client: PGlite): OwnerConnection & { close(): Promise<void> } {
  return {
    async script(text) {
      await client.exec(text);
    },
    async query<R>(text: string, params: unknown[] = []) {
      return (await client.query<R>(text, params)).rows;
    },
    transaction<T>(fn: (tx: OwnerConnection) => Promise<T>): Promise<T> {
      return client.transaction(async (t) => {
        const tx: OwnerConnection = {
          async script(text) {
            await t.exec(text);
          },
          async query<R>(text: string, params: unknown[] = []) {
            return (await t.query<R>(text, params)).rows;
          },
          transaction: () => Promise.reject(new Error('nested owner transaction')),
        };
        return fn(tx);
      });
    },
    async close() {},
  };
}

export function pgOwner(url: string, authCache?: AuthCache): OwnerConnection & { close(): Promise<void> } {
  const pool = new pg.Pool({ connectionString: url, max: 2, ...(authCache ? hearOwnChanges(url) : {}) });
  pool.on('error', () => undefined);
  if (authCache) pool.on('connect', (client) => noticesTo(client, authCache));
  return {
    async script(text) {
      await pool.query(text);
    },
    async query<R>(text: string, params: unknown[] = []) {
      return (await pool.query(text, params)).rows as R[];
    },
    async transaction<T>(fn: (tx: OwnerConnection) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      const tx: OwnerConnection = {
        async script(text) {
          await client.query(text);
        },
        async query<R>(text: string, params: unknown[] = []) {
          return (await client.query(text, params)).rows as R[];
        },
        transaction: () => Promise.reject(new Error('nested owner transaction')),
      };
      try {
        await client.query('begin');
        const result = await fn(tx);
        await client.query('commit');
        return result;
      } catch (err) {
        await client.query('rollback').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/**
 * Asks migration 040's trigger for a NOTICE of each authentication-relevant change this
 * connection makes (a startup option: no statement per connection), heard by noticesTo.
 */
function hearOwnChanges(url: string): { options: string } {
  // Explicit options replace the URL's: keep those an operator put there (a statement_timeout).
  let theirs = '';
  try {
    theirs = new URL(url).searchParams.get('options') ?? '';
  } catch {
    // Not a URL pg could read either: pg reports it on connect.
  }
  return { options: `${theirs} -c palisade.auth_notice=on`.trim() };
}

/**
 * This process's own change reaches its cache twice (auth-cache.ts): when the changing statement
 * raises its NOTICE, and when the connection reports its transaction over (ReadyForQuery with
 * status idle, committed or rolled back), which pg hears before it settles the COMMIT's promise:
 * a result put in between, or read from before the commit, is gone before the committer goes on.
 * pg keeps ReadyForQuery on `connection` (untyped); without it the cache is turned off for good.
 */
function noticesTo(client: pg.PoolClient, cache: AuthCache): void {
  const connection = (client as unknown as { connection?: { on?: unknown } }).connection;
  if (!connection || typeof connection.on !== 'function') {
    cache.disable();
    return;
  }
  const uncommitted = new Set<string>();
  client.on('notice', (notice) => {
    const tag = authNoticeTag(notice.message);
    if (!tag) return;
    uncommitted.add(tag);
    cache.changing(tag);
  });
  (connection as { on(event: 'readyForQuery', fn: (msg: { status?: string }) => void): void }).on('readyForQuery', (msg) => {
    if (uncommitted.size === 0 || msg.status !== 'I') return;
    for (const tag of uncommitted) cache.changing(tag);
    uncommitted.clear();
  });
}

/** The client's socket, to write two statements in one go (pg keeps it as `connection.stream`, untyped). */
function streamOf(client: pg.PoolClient): { cork(): void; uncork(): void } | null {
  const stream = (client as unknown as { connection?: { stream?: { cork?: unknown; uncork?: unknown } } }).connection?.stream;
  return stream && typeof stream.cork === 'function' && typeof stream.uncork === 'function' ? (stream as { cork(): void; uncork(): void }) : null;
}

/** Distinct parameterised statements kept prepared; the code's statements are far fewer. */
const PREPARED_LIMIT = 500;

/**
 * The pg pool as Kysely sees it, with two changes that cut PostgreSQL's work per request:
 *  - a parameterised statement is prepared once per connection under a stable name, so its
 *    plan is cached instead of made anew each time (RLS made planning cost more than running
 *    the read: docs/performance.md). Statements with literals only stay unnamed.
 *  - a simple-protocol message of several statements answers with one result each; Kysely
 *    reads one, the last (the request transaction sends BEGIN, the binding and a savepoint
 *    before authentication's statement: pinned.ts).
 */
function kyselyPool(pool: pg.Pool): PostgresPool {
  const names = new Map<string, string>();
  const nameOf = (text: string): string | undefined => {
    let name = names.get(text);
    if (!name && names.size < PREPARED_LIMIT) names.set(text, (name = `palisade_${names.size}`));
    return name;
  };
  /**
   * The answer to the last statement of a message. A COMMIT that PostgreSQL answers with ROLLBACK
   * found its transaction failed: a statement's error was caught and the transaction went on, so
   * nothing of it was committed. Said, never passed off as a commit.
   */
  const last = (text: string, r: pg.QueryResult | pg.QueryResult[]) => {
    const result = Array.isArray(r) ? r[r.length - 1] : r;
    if (text === 'commit' && result?.command === 'ROLLBACK') {
      throw new InvariantError('the transaction had failed (a statement error was caught and it went on): COMMIT rolled it back');
    }
    return result;
  };
  return {
    async connect() {
      const client = await pool.connect();
      // Statements waiting for the next one: a transaction's opening (WITH_NEXT_STATEMENT) or a
      // write whose answer nobody reads (WRITE_WITH_NEXT, execWithNext), in the order given.
      let waiting: pg.QueryConfig[] = [];
      let waitingWrite = false;
      const wrapped = {
        async query(text: string, values: readonly unknown[]) {
          const write = text.startsWith(WRITE_WITH_NEXT);
          if (write || text.startsWith(WITH_NEXT_STATEMENT)) {
            const held = text.slice(write ? WRITE_WITH_NEXT.length : WITH_NEXT_STATEMENT.length);
            // Converted now: a value pg cannot send would otherwise fail the write in the client,
            // before it reached the server, while the COMMIT written after it went out and committed.
            const prepared = values.map((v) => pgUtils.prepareValue(v));
            const name = prepared.length > 0 ? nameOf(held) : undefined;
            waiting.push(name ? { name, text: held, values: prepared } : prepared.length > 0 ? { text: held, values: prepared } : { text: held });
            if (write) waitingWrite = true;
            return { command: write ? 'HELD' : 'BEGIN', rowCount: null, rows: [] };
          }
          const name = values.length > 0 ? nameOf(text) : undefined;
          const config = name ? { name, text, values: [...values] } : { text, values: [...values] };
          if (waiting.length === 0) return last(text, (await client.query(config)) as unknown as pg.QueryResult | pg.QueryResult[]);
          const before = waiting;
          waiting = [];
          waitingWrite = false;
          // All written in one go (the client pipelines: it does not wait for an answer before
          // writing the next statement), answered in order. Had one before failed, the rest ran in
          // an aborted transaction and failed too; the first error is the one that says why, and
          // it is this statement's error: a COMMIT that carried a failed write rolled back.
          const stream = streamOf(client);
          stream?.cork();
          let sent: Promise<unknown>[];
          let statement: Promise<unknown>;
          try {
            sent = before.map((q) => client.query(q));
            statement = client.query(config);
          } finally {
            stream?.uncork();
          }
          let failed: unknown = null;
          for (const p of sent) {
            try {
              await p;
            } catch (err) {
              failed ??= err;
            }
          }
          if (failed !== null) {
            await statement.catch(() => undefined);
            throw failed;
          }
          return last(text, (await statement) as pg.QueryResult | pg.QueryResult[]);
        },
        release: () => {
          const lost = waitingWrite;
          // An opening never sent has nothing to undo. A write never sent was given outside a
          // transaction (its COMMIT or ROLLBACK would have carried it): a bug, said, not swallowed.
          waiting = [];
          waitingWrite = false;
          client.release();
          if (lost) throw new InvariantError('a write waiting for the next statement was given outside a transaction and never sent');
        },
      };
      // Kysely's client type also names a cursor overload, used only with its `cursor` option (not set here).
      return wrapped as unknown as PostgresPoolClient;
    },
    end: () => pool.end(),
  };
}

/** Where a command looked for its database, in the words of the settings that choose it. */
function whereIs(cfg: DatabaseConfig): string {
  if (cfg.kind === 'postgres') return `PostgreSQL database ${new URL(cfg.ownerUrl).pathname.slice(1) || 'postgres'} (DATABASE_URL)`;
  return cfg.dataDir ? `embedded database ${cfg.dataDir} (PALISADE_DATA_DIR, PALISADE_STATE_DIR)` : 'in-memory embedded database';
}

/**
 * Operator commands and the worker work on a database the server (or `palisade migrate`) made:
 * one that is not there is named, instead of PostgreSQL's 'role "palisade_app" does not exist',
 * and an embedded directory that does not exist is not created empty (new-user trial 2026-12-05).
 */
export function refuseMissingDatabase(cfg: DatabaseConfig): void {
  if (cfg.kind === 'pglite' && cfg.dataDir && !existsSync(cfg.dataDir)) throw new Error(notMigrated(cfg));
}

export async function refuseUnmigrated(cfg: DatabaseConfig, owner: OwnerConnection): Promise<void> {
  const [r] = await owner.query<{ ok: boolean }>(`select to_regclass('public.schema_migrations') is not null as ok`);
  if (!r?.ok) throw new Error(notMigrated(cfg));
}

function notMigrated(cfg: DatabaseConfig): string {
  return `no Palisade database in the ${whereIs(cfg)}: start the server once or run \`palisade migrate\`, or point those settings at the database the server uses`;
}

export async function openDatabase(
  cfg: DatabaseConfig,
  opts: {
    migrate: boolean;
    keyedSteps?: MigrateOptions['keyedSteps'];
    /**
     * An in-memory embedded database starts as this dumped data directory (PGlite's
     * dumpDataDir) instead of a fresh initdb: the test suite's migrated template, which spares
     * each test database the embedded initdb (~3 s of the suite's time per database).
     */
    startFrom?: Blob;
  },
): Promise<OpenedDatabase> {
  if (cfg.kind === 'pglite') {
    if (cfg.dataDir) mkdirSync(cfg.dataDir, { recursive: true });
    const release = cfg.dataDir ? lockDataDir(cfg.dataDir) : () => undefined;
    let client: PGlite;
    try {
      client = cfg.dataDir ? await PGlite.create(cfg.dataDir) : await PGlite.create(opts.startFrom ? { loadDataDir: opts.startFrom } : {});
      if (opts.migrate) {
        await migrate(pgliteOwner(client), { runtimeRole: cfg.runtimeRole, runtimePassword: null, login: false, keyedSteps: opts.keyedSteps });
      }
    } catch (err) {
      release();
      throw err;
    }
    const owner = pgliteOwner(client);
    const kysely = new Kysely<Schema>({ dialect: new PGliteDialect(client) });
    const db = new KyselyDatabase('pglite', kysely, cfg.runtimeRole, async () => {
      await client.close();
      release();
    }, pgliteListen(client));
    return { db, owner };
  }
  const authCache = cfg.authCache === false ? undefined : new AuthCache();
  const owner = pgOwner(cfg.ownerUrl, authCache);
  if (opts.migrate) {
    await migrate(owner, { runtimeRole: cfg.runtimeRole, runtimePassword: cfg.runtimePassword, login: true, keyedSteps: opts.keyedSteps });
  }
  // pipeline: a statement is written without waiting for the previous one's answer (pg 8.23),
  // which lets a transaction's opening travel with its first statement (kyselyPool).
  const pool = new pg.Pool({
    // An unused connection closes after poolIdleSeconds: the next burst reopens it on a cold
    // backend (docs/operations.md: what that costs the first requests after a quiet spell).
    connectionString: cfg.runtimeUrl, max: cfg.poolSize, idleTimeoutMillis: (cfg.poolIdleSeconds ?? 30) * 1000, pipeline: true,
    ...(authCache ? hearOwnChanges(cfg.runtimeUrl) : {}),
  });
  // A dropped connection (database restart) must not crash the process; the next query fails
  // with a 503 and the pool reconnects.
  pool.on('error', () => undefined);
  if (authCache) pool.on('connect', (client) => noticesTo(client, authCache));
  const kysely = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: kyselyPool(pool) }) });
  const db = new KyselyDatabase('postgres', kysely, cfg.runtimeRole, async () => undefined, pgListen(cfg.runtimeUrl), authCache ?? null);
  return { db, owner };
}
