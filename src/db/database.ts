import { AsyncLocalStorage } from 'node:async_hooks';
import { sql, type Kysely, type RawBuilder } from 'kysely';
import { InvariantError } from '../kernel/errors.js';
import { isUuid, SYSTEM_ORG_ID } from '../kernel/ids.js';
import { AUTH_CHANNEL, type AuthCache, type AuthCacheStats } from './auth-cache.js';
import { startAuthListener } from './auth-listener.js';
import type { Listen } from './listen.js';
import { bindingSql, PinnedConnection, WITH_NEXT_STATEMENT, WRITE_WITH_NEXT, type BoundColumns } from './pinned.js';

export type { BoundColumns } from './pinned.js';

// The schema is reached through parameterised `sql` templates, not a generated table type.
// eslint-disable-next-line @typescript-eslint/no-empty-object-type
export type Schema = {};
/** An executor bound to one connection inside one transaction (or, for readGlobal, autocommit). */
export type Tx = Kysely<Schema>;

/**
 * What a transaction is bound to. `orgId` scopes every tenant table through RLS; `userId`
 * lets a user see their own memberships across orgs (and, with `projectIds: null`, the custom
 * role and project assignments of those memberships); `projectIds` is the project scope of a
 * restricted member (null = every project of the org).
 */
export interface TenantBinding {
  orgId: string | null;
  userId?: string | null;
  projectIds?: readonly string[] | null;
}

export type Engine = 'pglite' | 'postgres';

export interface Database {
  readonly engine: Engine;
  readonly runtimeRole: string;
  /** The one way to reach tenant data: a transaction with the tenant bound, on the runtime role. */
  withTenant<T>(binding: TenantBinding, fn: (tx: Tx) => Promise<T>): Promise<T>;
  /** Global tables (users, sessions) with no tenant bound; `reason` documents why. */
  withSystem<T>(reason: string, fn: (tx: Tx) => Promise<T>): Promise<T>;
  /**
   * Single reads of global tables outside a transaction (one round trip): nothing is bound, so
   * RLS shows no tenant row. On the embedded engine this is withSystem (it needs SET LOCAL ROLE).
   */
  readGlobal<T>(reason: string, fn: (db: Tx) => Promise<T>): Promise<T>;
  /**
   * Runs `fn` (one request) on one connection and at most one transaction: every withTenant,
   * withSystem and readGlobal inside it reuses them, each call behind a savepoint (a failed call
   * undoes only its own work), and the transaction commits when `fn` settles, before the
   * response is sent. Only for requests whose writes may commit together (reads: a session
   * rotation, the audit of a refusal). See pinned.ts for the message budget. On the
   * embedded engine `fn` simply runs (one connection already; transactions stay per call).
   */
  requestTransaction<T>(fn: () => Promise<T>): Promise<T>;
  /**
   * Runs `fn` outside any request transaction: its calls, and the callbacks it schedules, open
   * their own. For work shared by several requests (session touches.ts), which must neither
   * commit with one of them nor keep its connection.
   */
  outsideRequest<T>(fn: () => T): T;
  /** NOTIFY wake-ups of a channel (listen.ts): a hint to look now, never the only way work is found. */
  readonly listen: Listen;
  /**
   * Authentication's read for an org-scoped request, with `orgId` bound (every project). As the
   * first statement of a request transaction on PostgreSQL it travels in the same message as
   * BEGIN and the binding, so it must be all literals (sql.lit of validated values; a parameter
   * is refused), and it returns, as bound_user_id and bound_project_ids, the binding it set with
   * set_config for the handler's queries. Elsewhere it is one withTenant.
   *
   * With `tagsOf` (what the row depends on, in migration 040's tags; null: not worth keeping) the
   * row may come from the authentication cache (auth-cache.ts), and then nothing is sent: the
   * handler's first query opens the transaction with the same binding. The row is frozen either
   * way. `orgId` in lower case, as the statement and the tags spell it. A cached row that
   * `usable` refuses (given the row and how long ago it was read, in ms) is read again from the
   * database, and the fresh row kept.
   */
  authenticateInOrg<R extends BoundColumns>(
    orgId: string,
    statement: RawBuilder<R>,
    tagsOf?: (row: R) => readonly string[] | null,
    usable?: (row: R, ageMs: number) => boolean,
  ): Promise<R | undefined>;
  /** The authentication cache's counters; null where there is none (the embedded engine, or turned off). */
  authCacheStats(): AuthCacheStats | null;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function rows<R>(tx: Tx, q: RawBuilder<R>): Promise<R[]> {
  return (await q.execute(tx)).rows;
}

export async function one<R>(tx: Tx, q: RawBuilder<R>): Promise<R | undefined> {
  return (await q.execute(tx)).rows[0];
}

/**
 * Serializes, until the transaction ends, the writers of one org that check a cap and then
 * insert ("at most N endpoints"): under READ COMMITTED two concurrent creations would both count
 * N - 1 and both insert. A transaction-scoped advisory lock, so no row or table lock is needed.
 */
export async function lockOrgCap(tx: Tx, orgId: string, what: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`${orgId}:${what}`}, 0))`.execute(tx);
}

export async function exec(tx: Tx, q: RawBuilder<unknown>): Promise<number> {
  return Number((await q.execute(tx)).numAffectedRows ?? 0n);
}

/**
 * The connections of transactions that run() opened and will end with COMMIT or ROLLBACK: the
 * only ones where a write may wait for the next statement. A request's pinned connection is not
 * one: its calls report success before the request commits, and what a read sends before it
 * commits (a download's bytes) must not go out ahead of the write that audits it.
 */
const ownTransactions = new WeakSet<object>();

/**
 * A write whose answer nobody reads, written together with the transaction's next statement
 * (at the latest its COMMIT) instead of waiting for its own round trip, inside a transaction of
 * its own (withTenant, withSystem outside a request); anywhere else (a request's connection,
 * PGlite), at once. Its error is that next statement's error, and a COMMIT that carried a failed
 * write rolled back: the write still commits or fails with the transaction.
 */
export async function execWithNext(tx: Tx, q: RawBuilder<unknown>): Promise<void> {
  await (ownTransactions.has(tx) ? sql`${sql.raw(WRITE_WITH_NEXT)}${q}` : q).execute(tx);
}

/**
 * Runs a write that may hit a unique constraint: false when it did (only that write is undone,
 * under a savepoint, so the transaction goes on), true when it went in. Any other error throws.
 */
export async function writeUnlessTaken(tx: Tx, q: RawBuilder<unknown>): Promise<boolean> {
  // A repeated name is fine: ROLLBACK TO and RELEASE act on the newest savepoint of that name.
  await exec(tx, sql`savepoint unless_taken`);
  try {
    await exec(tx, q);
  } catch (err) {
    if ((err as { code?: string }).code !== '23505') throw err;
    await exec(tx, sql`rollback to savepoint unless_taken`);
    return false;
  }
  await exec(tx, sql`release savepoint unless_taken`);
  return true;
}

/** null: every project; undefined (not stated): none, so that forgetting the scope fails closed. */
function scopeValue(projectIds: readonly string[] | null | undefined): string {
  if (projectIds === undefined) return '';
  if (projectIds === null) return '*';
  for (const id of projectIds) if (!isUuid(id)) throw new InvariantError('project scope must be uuids');
  return projectIds.join(',');
}

export class KyselyDatabase implements Database {
  private readonly pinned = new AsyncLocalStorage<PinnedConnection>();

  constructor(
    readonly engine: Engine,
    private readonly kysely: Kysely<Schema>,
    readonly runtimeRole: string,
    private readonly onClose: () => Promise<void>,
    readonly listen: Listen,
    private readonly authCache: AuthCache | null = null,
  ) {
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(runtimeRole)) throw new InvariantError('bad runtime role name');
  }

  /** The cache's listener, started by the first authentication (a CLI or the worker never starts one). */
  private authListener: Promise<(() => Promise<void>) | null> | null = null;

  private listenForAuthChanges(cache: AuthCache): void {
    // Off until the listener has proven that this process's own NOTIFY comes back (auth-listener.ts).
    // Started outside the request that first needs it: its probes and timers would otherwise carry
    // that request's pinned connection in their async context for the life of the process.
    this.authListener ??= this.pinned.exit(() => startAuthListener({
      cache,
      listen: this.listen,
      notify: (payload) => this.withSystem('authentication cache probe', async (tx) => {
        await sql`select pg_notify(${AUTH_CHANNEL}, ${payload})`.execute(tx);
      }),
    })).catch(() => {
      cache.lost();
      // Tried again by the next authentication.
      this.authListener = null;
      return null;
    });
  }

  authCacheStats(): AuthCacheStats | null {
    return this.authCache?.stats() ?? null;
  }

  /**
   * One transaction on the runtime role with the binding set transaction-locally. On
   * PostgreSQL, BEGIN and the binding travel as one simple-protocol message (pinned.ts), and
   * inside a request transaction the call reuses the request's.
   */
  private run<T>(org: string, user: string, scope: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    if (this.engine === 'pglite') {
      return this.kysely.transaction().execute(async (tx) => {
        // One superuser connection: drop to the runtime role for this transaction only.
        await sql`set local role ${sql.id(this.runtimeRole)}`.execute(tx);
        await sql`select set_config('palisade.org_id', ${org}, true), set_config('palisade.user_id', ${user}, true),
          set_config('palisade.project_ids', ${scope}, true)`.execute(tx);
        return fn(tx);
      });
    }
    const binding = { org, user, scope };
    const pinned = this.pinned.getStore();
    if (pinned?.usable) return pinned.call(binding, fn);
    const bind = bindingSql(binding);
    return this.kysely.connection().execute(async (conn) => {
      // Written together with fn's first statement: no round trip of its own.
      await sql.raw(`${WITH_NEXT_STATEMENT}begin; ${bind}`).execute(conn);
      let result: T;
      ownTransactions.add(conn);
      try {
        try {
          result = await fn(conn);
        } catch (err) {
          await sql.raw('rollback').execute(conn).catch(() => undefined);
          throw err;
        }
        await sql.raw('commit').execute(conn);
      } finally {
        ownTransactions.delete(conn);
      }
      return result;
    });
  }

  async requestTransaction<T>(fn: () => Promise<T>): Promise<T> {
    if (this.engine === 'pglite' || this.pinned.getStore()) return fn();
    const pinned = new PinnedConnection(this.kysely);
    let result: T;
    try {
      result = await this.pinned.run(pinned, fn);
    } catch (err) {
      await pinned.finish(true);
      throw err;
    }
    await pinned.finish(false);
    return result;
  }

  outsideRequest<T>(fn: () => T): T {
    return this.pinned.exit(fn);
  }

  async authenticateInOrg<R extends BoundColumns>(
    orgId: string,
    statement: RawBuilder<R>,
    tagsOf?: (row: R) => readonly string[] | null,
    usable?: (row: R, ageMs: number) => boolean,
  ): Promise<R | undefined> {
    // Lower case, as the triggers spell it in their tags (uuid::text): an entry tagged with
    // another spelling would never be dropped by the org's changes.
    if (!isUuid(orgId) || orgId !== orgId.toLowerCase()) throw new InvariantError('authenticateInOrg needs a lower-case uuid orgId');
    const compiled = statement.compile(this.kysely);
    if (compiled.parameters.length > 0) throw new InvariantError('an authentication statement takes literals only');
    const cache = tagsOf ? this.authCache : null;
    let ticket = 0;
    if (cache) {
      this.listenForAuthChanges(cache);
      // The statement is all literals (a token digest and the org): its text is the key.
      // An entry under this key was put from this statement's row.
      const hit = cache.get(compiled.sql, usable && ((row, ageMs) => usable(row as R, ageMs)));
      if (hit) return hit as R;
      ticket = cache.ticket();
    }
    const pinned = this.pinned.getStore();
    const row = pinned?.usable && this.engine === 'postgres'
      ? await pinned.authenticate<R>(orgId, compiled.sql)
      : await this.withTenant({ orgId, projectIds: null }, (tx) => one(tx, statement));
    if (!row) return row;
    const tags = cache && tagsOf ? tagsOf(row) : null;
    if (cache && tags) cache.put(compiled.sql, row, tags, ticket);
    return Object.freeze(row);
  }

  withTenant<T>(binding: TenantBinding, fn: (tx: Tx) => Promise<T>): Promise<T> {
    if (binding.orgId !== null && !isUuid(binding.orgId)) throw new InvariantError('withTenant needs a uuid orgId');
    if (binding.userId && !isUuid(binding.userId)) throw new InvariantError('withTenant needs a uuid userId');
    if (binding.orgId === null && !binding.userId) throw new InvariantError('withTenant needs an org or a user');
    // With no org bound, the scope can only open the user's own assignments (own_project_access,
    // migration 026): every other project-scoped row needs the org. A list means nothing there.
    const scope = binding.orgId ? scopeValue(binding.projectIds) : binding.projectIds === null ? '*' : '';
    return this.run(binding.orgId ?? '', binding.userId ?? '', scope, fn);
  }

  withSystem<T>(reason: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
    if (!reason) throw new InvariantError('withSystem needs a reason');
    return this.run('', '', '', fn);
  }

  readGlobal<T>(reason: string, fn: (db: Tx) => Promise<T>): Promise<T> {
    if (!reason) throw new InvariantError('readGlobal needs a reason');
    if (this.engine === 'pglite') return this.withSystem(reason, fn);
    const pinned = this.pinned.getStore();
    if (pinned?.usable) return pinned.call(null, fn);
    return fn(this.kysely);
  }

  async ping(): Promise<void> {
    await this.withSystem('readiness', (tx) => sql`select 1`.execute(tx));
  }

  async close(): Promise<void> {
    const stop = await this.authListener;
    this.authListener = null;
    await stop?.();
    await this.kysely.destroy();
    await this.onClose();
  }
}

export { SYSTEM_ORG_ID };
