import { sql, type Kysely } from 'kysely';
import { InvariantError } from '../kernel/errors.js';
import { isUuid } from '../kernel/ids.js';

// A transaction executor; kept structural so that this file needs nothing from database.ts.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
type Conn = Kysely<{}>;

/** The tenant binding as three validated strings: org uuid or '', user uuid or '', scope. */
export interface BindingValues {
  org: string;
  user: string;
  scope: string;
}

const SCOPE_RE = /^(\*|[0-9a-fA-F,-]*)$/;

export function checkBinding(b: BindingValues): void {
  for (const v of [b.org, b.user]) if (v !== '' && !isUuid(v)) throw new InvariantError('binding values must be uuids');
  if (!SCOPE_RE.test(b.scope)) throw new InvariantError('bad project scope');
}

/** Inlined rather than parameterised so that it shares a message with BEGIN; values are checked first. */
export function bindingSql(b: BindingValues): string {
  checkBinding(b);
  return (
    `select set_config('palisade.org_id', '${b.org}', true), set_config('palisade.user_id', '${b.user}', true), ` +
    `set_config('palisade.project_ids', '${b.scope}', true)`
  );
}

/**
 * A statement given with this prefix is not sent at once: the pool's client (open.ts) writes it
 * together with the connection's next statement, pipelined, and that statement fails if it
 * failed. A transaction's opening (BEGIN and the binding) thus costs no round trip of its own.
 * Only ever prefixed to constant text of this module and database.ts, never to anything built
 * from input.
 */
export const WITH_NEXT_STATEMENT = '/* palisade: sent with the next statement */ ';

/**
 * The same for a write whose answer nobody reads (database.ts execWithNext: the audit event, sent
 * with its transaction's COMMIT). Prefixed to statements of the code, their values parameters.
 * A connection released with one still waiting throws: it was given outside a transaction.
 */
export const WRITE_WITH_NEXT = '/* palisade: a write sent with the next statement */ ';

const keyOf = (b: BindingValues) => `${b.org}|${b.user}|${b.scope}`;
const UNBOUND: BindingValues = { org: '', user: '', scope: '' };

/** Columns an authentication statement returns to say which binding it set (set_config results). */
export interface BoundColumns {
  bound_user_id: string;
  bound_project_ids: string;
}

/**
 * One request's connection and transaction (Database.requestTransaction). Each call starts at a
 * savepoint, so that a failed call undoes only its own work, as its own transaction would have;
 * the savepoint shares a message with the call's binding, and a call whose binding is already in
 * place right after a savepoint sends nothing before its query. A signed-in read thus costs
 * three round trips: BEGIN + binding + savepoint + authentication, the query, COMMIT; two when
 * authentication came from the cache (auth-cache.ts): BEGIN + binding + savepoint written
 * together with the query (WITH_NEXT_STATEMENT), then COMMIT.
 */
export class PinnedConnection {
  private conn: Conn | null = null;
  private acquiring: Promise<Conn> | null = null;
  private release: (() => void) | null = null;
  private held: Promise<void> | null = null;
  private began = false;
  /** The binding in effect now, as a key. */
  private bound = '';
  /** The binding in effect at the latest savepoint (what a rollback to it restores). */
  private savepointBinding = '';
  /** Nothing worth keeping ran since the latest savepoint: a call may start from it as is. */
  private fresh = false;
  /** A call is running: a nested call takes its own transaction, as without pinning. */
  busy = false;
  /** Undoing a failed call failed (the connection is gone): later calls take their own. */
  broken = false;
  /**
   * The request is over: work it started that outlives it (a timer, an un-awaited promise)
   * still carries this object in its async context, and must not reach a connection that is
   * back in the pool, inside another request's transaction.
   */
  private finished = false;
  /** The call in progress, which finish() waits for before committing. */
  private running: Promise<unknown> | null = null;

  constructor(private readonly kysely: Conn) {}

  get usable(): boolean {
    return !this.busy && !this.broken && !this.finished;
  }

  private connection(): Promise<Conn> {
    if (this.conn) return Promise.resolve(this.conn);
    this.acquiring ??= new Promise<Conn>((resolve, reject) => {
      this.held = this.kysely
        .connection()
        .execute(
          (conn) =>
            new Promise<void>((done) => {
              this.conn = conn;
              this.release = done;
              resolve(conn);
            }),
        )
        .catch(reject);
    });
    return this.acquiring;
  }

  /** `binding` null: a global read, autocommit before the transaction began, unbound after. */
  call<T>(binding: BindingValues | null, fn: (tx: Conn) => Promise<T>): Promise<T> {
    const p = this.callNow(binding, fn);
    this.running = p.catch(() => undefined);
    return p;
  }

  /**
   * Opens a call: a savepoint and the binding. A previous call that caught its own SQL error
   * returned normally but left the transaction aborted (25P02): rolling back to its savepoint
   * undoes that call only (as its own transaction's COMMIT would have) and the call proceeds.
   */
  private async open(conn: Conn, bind: string): Promise<void> {
    try {
      await sql.raw(`savepoint call; ${bind}`).execute(conn);
    } catch (err) {
      if ((err as { code?: unknown }).code !== '25P02') throw err;
      await sql.raw('rollback to savepoint call').execute(conn);
      this.bound = this.savepointBinding;
      await sql.raw(`savepoint call; ${bind}`).execute(conn);
    }
    this.savepointBinding = this.bound;
  }

  private async callNow<T>(binding: BindingValues | null, fn: (tx: Conn) => Promise<T>): Promise<T> {
    this.busy = true;
    try {
      const conn = await this.connection();
      if (!this.began && binding === null) return await fn(conn);
      const want = binding ?? UNBOUND;
      const key = keyOf(want);
      if (!this.began) {
        // Sent with the call's first statement (or the COMMIT, if it makes none).
        await sql.raw(`${WITH_NEXT_STATEMENT}begin; ${bindingSql(want)}; savepoint call`).execute(conn);
        this.began = true;
        this.bound = this.savepointBinding = key;
      } else if (!this.fresh || this.bound !== key) {
        await this.open(conn, bindingSql(want)).catch((err: unknown) => {
          this.broken = true;
          throw err;
        });
        this.bound = key;
      }
      return await this.guarded(conn, fn);
    } finally {
      this.busy = false;
    }
  }

  /**
   * Opens the transaction with `statement` (all literals) in the same message as BEGIN and the
   * org binding; the binding the statement sets stays for the calls after it.
   */
  async authenticate<R extends BoundColumns>(org: string, statement: string): Promise<R | undefined> {
    if (this.began) throw new InvariantError('authentication must open the request transaction');
    this.busy = true;
    try {
      const conn = await this.connection();
      const base: BindingValues = { org, user: '', scope: '*' };
      const result = await sql.raw<R>(`begin; ${bindingSql(base)}; savepoint call; ${statement}`).execute(conn);
      this.began = true;
      this.savepointBinding = keyOf(base);
      this.fresh = true;
      const row = result.rows[0];
      if (row) {
        const set: BindingValues = { org, user: row.bound_user_id, scope: row.bound_project_ids };
        checkBinding(set);
        this.bound = keyOf(set);
      } else {
        this.bound = keyOf(base);
      }
      return row;
    } catch (err) {
      // A failure before or during BEGIN leaves no transaction; one after it, an aborted one.
      if (this.conn) await sql.raw('rollback').execute(this.conn).catch(() => (this.broken = true));
      this.began = false;
      throw err;
    } finally {
      this.busy = false;
    }
  }

  private async guarded<T>(conn: Conn, fn: (tx: Conn) => Promise<T>): Promise<T> {
    try {
      this.fresh = false;
      const result = await fn(conn);
      return result;
    } catch (err) {
      try {
        await sql.raw('rollback to savepoint call').execute(conn);
        this.bound = this.savepointBinding;
        this.fresh = true;
      } catch {
        this.broken = true;
      }
      throw err;
    }
  }

  /**
   * Commits (also when the request failed: what a read writes, a session rotation, the
   * audit of a refusal, stands on its own) and gives the connection back.
   */
  async finish(requestFailed: boolean): Promise<void> {
    this.finished = true;
    await this.running;
    try {
      if (this.began && this.conn) {
        try {
          // An aborted transaction (a broken savepoint) makes PostgreSQL roll back instead.
          await sql.raw('commit').execute(this.conn);
        } catch (err) {
          if (!requestFailed) throw err;
        }
      }
    } finally {
      this.release?.();
      await this.held?.catch(() => undefined);
      this.conn = null;
    }
  }
}
