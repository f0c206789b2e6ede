import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { ENGINES, createTestDatabase, type TestDatabase } from '../../test/support/db.js';
import { newId } from '../crypto/index.js';
import { SYSTEM_ORG_ID } from '../kernel/ids.js';
import { exec, execWithNext, one, type Tx } from './database.js';
import { WRITE_WITH_NEXT } from './pinned.js';

/**
 * execWithNext (the audit event's statement, sent with the transaction's COMMIT): the write
 * commits or fails with its transaction, its failure is the next statement's, and nothing of a
 * transaction whose held write failed is left behind, on a connection of its own and on a
 * request's pinned one.
 */
describe.each(ENGINES)('execWithNext (%s)', (engine) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(engine);
  });
  afterAll(() => t.drop());

  // An account as the database holds it (migration 039); a null blind index violates not-null (23502).
  const insertUser = (id: string, emailIndex: string | null = `held-${id}`) =>
    sql`insert into users (id, email_sealed, name_sealed, email_index, password_hash, password_changed_at) values (${id}, 'sealed', 'sealed', ${emailIndex}, 'h', now())`;
  const existing = async (ids: string[]) =>
    (await t.owner.query<{ id: string }>('select id from users where id = any($1::uuid[]) order by id', [ids])).map((r) => r.id);
  const system = <T>(fn: (tx: Tx) => Promise<T>) => t.db.withTenant({ orgId: SYSTEM_ORG_ID }, fn);

  it('commits the held write with the transaction, after the statements before it', async () => {
    const [a, b] = [newId(), newId()];
    await system(async (tx) => {
      await exec(tx, insertUser(a));
      await execWithNext(tx, insertUser(b));
    });
    expect(await existing([a, b])).toEqual([a, b].sort());
  });

  it('fails the COMMIT that carries a failed write, which rolls the whole transaction back', async () => {
    const [a, b] = [newId(), newId()];
    await expect(system(async (tx) => {
      await exec(tx, insertUser(a));
      await execWithNext(tx, insertUser(b, null));
    })).rejects.toMatchObject({ code: '23502' });
    expect(await existing([a, b])).toEqual([]);
  });

  it('fails by the next statement at the latest, with the held write\u2019s own error, not the aborted transaction\u2019s', async () => {
    const [a, b, c] = [newId(), newId(), newId()];
    // PostgreSQL: the next statement that carried it; PGlite, which sends it at once: the write itself.
    let failed: unknown = null;
    await expect(system(async (tx) => {
      await exec(tx, insertUser(a));
      try {
        await execWithNext(tx, insertUser(b, null));
        await exec(tx, insertUser(c));
      } catch (err) {
        failed = err;
        throw err;
      }
    })).rejects.toMatchObject({ code: '23502' });
    expect(failed).toMatchObject({ code: '23502' });
    expect(await existing([a, b, c])).toEqual([]);
  });

  it('keeps writes held one after another in order', async () => {
    const [a, b] = [newId(), newId()];
    const seen = await system(async (tx) => {
      await execWithNext(tx, insertUser(a));
      await execWithNext(tx, insertUser(b));
      return one<{ n: number }>(tx, sql`select count(*)::int as n from users where id in (${a}, ${b})`);
    });
    expect(seen?.n).toBe(2);
    expect(await existing([a, b])).toEqual([a, b].sort());
  });

  it('fails a transaction whose statement error was caught and that went on: its COMMIT committed nothing', async () => {
    const [a, b] = [newId(), newId()];
    await expect(system(async (tx) => {
      await exec(tx, insertUser(a));
      await exec(tx, insertUser(b, null)).catch(() => undefined);
      return 'looked fine';
    })).rejects.toThrow(/COMMIT rolled it back/);
    expect(await existing([a, b])).toEqual([]);
    // The connection is clean afterwards.
    await system((tx) => exec(tx, insertUser(a)));
    expect(await existing([a])).toEqual([a]);
  });

  it('refuses a value it could not send when it is given, so the transaction rolls back', async () => {
    const a = newId();
    await expect(system(async (tx) => {
      await exec(tx, insertUser(a));
      // pg turns an object into JSON, and a BigInt has none: had this failed only when sent, in the
      // client, the COMMIT written after it would have gone out and committed the rest.
      await execWithNext(tx, sql`select ${{ n: 1n }}::jsonb`);
    })).rejects.toThrow(/BigInt/);
    expect(await existing([a])).toEqual([]);
  });

  it.runIf(engine === 'postgres')('on a request\u2019s pinned connection, sends at once: the call that wrote fails, not a later one, and the request goes on', async () => {
    const [a, b, c] = [newId(), newId(), newId()];
    let own: unknown = null;
    const answer = await t.db.requestTransaction(async () => {
      await system((tx) => execWithNext(tx, insertUser(a)));
      await system((tx) => execWithNext(tx, insertUser(b, null))).catch((err: unknown) => (own = err));
      await system((tx) => exec(tx, insertUser(c)));
      return 'answered';
    });
    expect(answer).toBe('answered');
    expect(own).toMatchObject({ code: '23502' });
    expect(await existing([a, b, c])).toEqual([a, c].sort());
  });

  it.runIf(engine === 'postgres')('sends at once outside a transaction of its own, and a connection released with a held write throws', async () => {
    const [a, b] = [newId(), newId()];
    await t.db.readGlobal('test: a write in autocommit', (db) => execWithNext(db, insertUser(a)));
    expect(await existing([a])).toEqual([a]);
    // Only execWithNext holds a write, and only where the COMMIT follows; anything else holding one is a bug.
    await expect(t.db.readGlobal('test: a write held outside a transaction', (db) => sql`${sql.raw(WRITE_WITH_NEXT)}${insertUser(b)}`.execute(db)))
      .rejects.toThrow(/outside a transaction/);
    expect(await existing([b])).toEqual([]);
    await system((tx) => exec(tx, insertUser(b)));
    expect(await existing([b])).toEqual([b]);
  });
});
