import type { PGlite } from '@electric-sql/pglite';
import { InvariantError } from '../kernel/errors.js';
import {
  CompiledQuery,
  PostgresAdapter,
  PostgresIntrospector,
  PostgresQueryCompiler,
  type DatabaseConnection,
  type Dialect,
  type Driver,
  type Kysely,
  type QueryResult,
} from 'kysely';

/**
 * PGlite has exactly one connection. Kysely would otherwise interleave concurrent
 * transactions on it (and with them, their transaction-local tenant settings), so every
 * acquisition waits for the previous holder to release: the embedded engine serializes.
 */
class Mutex {
  private tail: Promise<void> = Promise.resolve();
  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => (release = r));
    const prev = this.tail;
    this.tail = prev.then(() => next);
    return prev.then(() => release);
  }
}

/**
 * Parameters in the forms node-postgres would send (text, except bytes): PGlite's own serializer
 * throws halfway through writing a message when a value does not fit the parameter's inferred
 * type (a number or a Date where an array is expected, an object where text is), and that leaves
 * its one connection out of step, so every later query of the process fails (review: a passkey's
 * `transports` given as a number took the embedded server down). As text, a misfit is an ordinary
 * PostgreSQL input error (22P02, a 400), as it is on a PostgreSQL server.
 */
export function asPgliteParameter(value: unknown): unknown {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || value instanceof Uint8Array) return value;
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(asPgliteParameter);
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value as number | bigint | boolean);
}

class PGliteConnection implements DatabaseConnection {
  constructor(private readonly client: PGlite) {}
  async executeQuery<R>(q: CompiledQuery): Promise<QueryResult<R>> {
    const res = await this.client.query<R>(q.sql, q.parameters.map(asPgliteParameter));
    return {
      rows: res.rows,
      ...(res.affectedRows !== undefined ? { numAffectedRows: BigInt(res.affectedRows) } : {}),
    };
  }
  // eslint-disable-next-line require-yield
  async *streamQuery<R>(): AsyncIterableIterator<QueryResult<R>> {
    throw new Error('streaming is not supported on PGlite');
  }
}

class PGliteDriver implements Driver {
  private readonly mutex = new Mutex();
  private readonly releases = new WeakMap<DatabaseConnection, () => void>();
  constructor(private readonly client: PGlite) {}
  async init(): Promise<void> {}
  async acquireConnection(): Promise<DatabaseConnection> {
    const release = await this.mutex.acquire();
    const conn = new PGliteConnection(this.client);
    this.releases.set(conn, release);
    return conn;
  }
  async beginTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('begin'));
  }
  /**
   * A COMMIT of a failed transaction (a statement's error was caught and the code went on) is a
   * rollback that must be said, as on PostgreSQL (open.ts). PGlite's answer carries no command tag
   * to tell it, so the transaction is asked first: a failed one refuses every statement (25P02).
   */
  async commitTransaction(conn: DatabaseConnection): Promise<void> {
    try {
      await conn.executeQuery(CompiledQuery.raw('select 1'));
    } catch (err) {
      if ((err as { code?: unknown }).code !== '25P02') throw err;
      await conn.executeQuery(CompiledQuery.raw('rollback'));
      throw new InvariantError('the transaction had failed (a statement error was caught and it went on): COMMIT rolled it back');
    }
    await conn.executeQuery(CompiledQuery.raw('commit'));
  }
  async rollbackTransaction(conn: DatabaseConnection): Promise<void> {
    await conn.executeQuery(CompiledQuery.raw('rollback'));
  }
  async releaseConnection(conn: DatabaseConnection): Promise<void> {
    this.releases.get(conn)?.();
    this.releases.delete(conn);
  }
  async destroy(): Promise<void> {}
}

export class PGliteDialect implements Dialect {
  constructor(private readonly client: PGlite) {}
  createAdapter() {
    return new PostgresAdapter();
  }
  createDriver(): Driver {
    return new PGliteDriver(this.client);
  }
  createIntrospector(db: Kysely<unknown>) {
    return new PostgresIntrospector(db);
  }
  createQueryCompiler() {
    return new PostgresQueryCompiler();
  }
}
