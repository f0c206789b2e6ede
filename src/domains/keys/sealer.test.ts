import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring, SealedValueError, type FieldRef, type Kek } from '../../crypto/index.js';
import { rows, type Tx } from '../../db/database.js';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../../test/support/db.js';
import { seedSmallOrg } from '../../../test/support/tenants.js';
import { createSealer, type Sealer } from './index.js';

const K1: Kek = { id: 'k1', key: Buffer.alloc(32, 1) };
const K2: Kek = { id: 'k2', key: Buffer.alloc(32, 2) };

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'opened';
  } catch (err) {
    // Sealed values come from our own rows: one that does not open is an integrity failure.
    return err instanceof SealedValueError ? 'unreadable' : `${(err as Error).name}: ${(err as Error).message}`;
  }
}

interface KeyRow {
  org_id: string;
  id: string;
  kek_id: string;
  wrapped: string;
  active: boolean;
}

describe.each(ENGINES)('org-scoped sealing through createSealer on %s', (engine) => {
  let t: TestDatabase;
  let a: string;
  let b: string;
  const sealer = createSealer(new Keyring([K1]));
  const ref = (org: string, row = 'asset-1'): FieldRef => ({ scope: org, table: 'assets', column: 'secret', row });
  const inOrg = <T>(org: string, fn: (tx: Tx) => Promise<T>) => t.db.withTenant({ orgId: org, projectIds: null }, fn);
  const keysOf = (org: string) => t.owner.query<KeyRow>(
    `select org_id::text, id::text, kek_id, wrapped, active from org_keys where org_id = $1 order by created_at`, [org]);

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    a = (await seedSmallOrg(t.db, 'alpha', 1)).orgId;
    b = (await seedSmallOrg(t.db, 'bravo', 1)).orgId;
  });
  afterAll(async () => t?.drop());

  it('stores the org data key wrapped in org_keys, and opens in a later transaction of the org', async () => {
    const sealed = await inOrg(a, (tx) => sealer.seal(tx, ref(a), 'api-secret-of-alpha'));
    const keys = await keysOf(a);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ org_id: a, kek_id: 'k1', active: true });
    expect(sealed.split('.')[1]).toBe(keys[0]?.id);
    expect(sealed).not.toContain('api-secret');
    expect(await t.owner.query(`select 1 from system_keys`)).toEqual([]);
    // A new keyring (cold cache) opens it from the database alone.
    expect(await inOrg(a, (tx) => createSealer(new Keyring([K1])).open(tx, ref(a), sealed))).toBe('api-secret-of-alpha');
  });

  it('reuses the org data key for further values', async () => {
    const [x, y] = await inOrg(a, async (tx) => [await sealer.seal(tx, ref(a, 'r2'), 'x'), await sealer.seal(tx, ref(a, 'r3'), 'y')]);
    expect(x.split('.')[1]).toBe(y.split('.')[1]);
    expect(await keysOf(a)).toHaveLength(1);
  });

  it("another org cannot open it: its transaction cannot see the key", async () => {
    const sealed = await inOrg(a, (tx) => sealer.seal(tx, ref(a), 'only for alpha'));
    const fromB = await inOrg(b, async (tx) => ({
      visibleKeys: await rows<{ org_id: string }>(tx, sql`select org_id::text from org_keys`),
      asA: await codeOf(createSealer(new Keyring([K1])).open(tx, ref(a), sealed)),
      asB: await codeOf(createSealer(new Keyring([K1])).open(tx, ref(b), sealed)),
    }));
    expect(fromB.visibleKeys.every((k) => k.org_id === b)).toBe(true);
    expect(fromB.asA).toBe('unreadable');
    expect(fromB.asB).toBe('unreadable');
    // withSystem sees no org key either.
    expect(await t.db.withSystem('test', (tx) => codeOf(sealer.open(tx, ref(a), sealed)))).toBe('unreadable');
  });

  it('gives the other org its own key, which the first org cannot use', async () => {
    const sealedB = await inOrg(b, (tx) => sealer.seal(tx, ref(b), 'bravo secret'));
    const [keyA, keyB] = [(await keysOf(a))[0]?.id, (await keysOf(b))[0]?.id];
    expect(keyB).toBeDefined();
    expect(keyB).not.toBe(keyA);
    expect(sealedB.split('.')[1]).toBe(keyB);
    expect(await inOrg(a, (tx) => codeOf(sealer.open(tx, ref(b), sealedB)))).toBe('unreadable');
    expect(await inOrg(b, (tx) => sealer.open(tx, ref(b), sealedB))).toBe('bravo secret');
  });

  it('a wrapped key copied into another org by the owner still does not open there', async () => {
    const sealed = await inOrg(a, (tx) => sealer.seal(tx, ref(a), 'copied'));
    const key = (await keysOf(a))[0];
    if (!key) throw new Error('no key');
    await t.owner.query(`insert into org_keys (org_id, id, kek_id, wrapped, active) values ($1, $2, $3, $4, false)`,
      [b, key.id, key.kek_id, key.wrapped]);
    const opened = await inOrg(b, (tx) => codeOf(createSealer(new Keyring([K1])).open(tx, ref(b), sealed)));
    expect(opened).toBe('unreadable');
    await t.owner.query(`delete from org_keys where org_id = $1 and id = $2`, [b, key.id]);
  });

  it('does not open a value moved to another row, column or table', async () => {
    const sealed = await inOrg(a, (tx) => sealer.seal(tx, ref(a, 'row-1'), 'pinned'));
    const moved = await inOrg(a, async (tx) => [
      await codeOf(sealer.open(tx, ref(a, 'row-2'), sealed)),
      await codeOf(sealer.open(tx, { ...ref(a, 'row-1'), column: 'name' }, sealed)),
      await codeOf(sealer.open(tx, { ...ref(a, 'row-1'), table: 'projects' }, sealed)),
    ]);
    expect(moved).toEqual(['unreadable', 'unreadable', 'unreadable']);
  });

  it('an org id in any letter case still keeps its key in org_keys under RLS', async () => {
    const upper = a.toUpperCase();
    const sealed = await inOrg(a, (tx) => sealer.seal(tx, ref(upper, 'upper'), 'case'));
    expect(await t.owner.query(`select scope from system_keys`)).toEqual([]);
    expect(sealed.split('.')[1]).toBe((await keysOf(a))[0]?.id);
    expect(await inOrg(a, (tx) => createSealer(new Keyring([K1])).open(tx, ref(a, 'upper'), sealed))).toBe('case');
    expect(await inOrg(b, (tx) => codeOf(createSealer(new Keyring([K1])).open(tx, ref(upper, 'upper'), sealed)))).toBe('unreadable');
  });

  it('rotates the KEK: the key is re-wrapped in place and old ciphertexts open with the new KEK only', async () => {
    const old = await inOrg(a, (tx) => sealer.seal(tx, ref(a, 'rot'), 'sealed under k1'));
    const rotating = new Keyring([K2, K1]);
    // Re-wrapping is an operator job over the owner connection: the runtime role may read data
    // keys and add them, never rewrite them (migration 014).
    const current = await inOrg(a, (tx) => rows<{ id: string; kekId: string; wrapped: string }>(
      tx, sql`select id::text, kek_id as "kekId", wrapped from org_keys where org_id = ${a}`));
    for (const k of current) {
      const w = rotating.rewrap(a, k);
      await t.owner.query('update org_keys set kek_id = $1, wrapped = $2 where org_id = $3 and id = $4', [w.kekId, w.wrapped, a, k.id]);
    }
    expect((await keysOf(a)).map((k) => k.kek_id)).toEqual(['k2']);
    const onlyK2: Sealer = createSealer(new Keyring([K2]));
    expect(await inOrg(a, (tx) => onlyK2.open(tx, ref(a, 'rot'), old))).toBe('sealed under k1');
    expect(await inOrg(a, (tx) => codeOf(createSealer(new Keyring([K1])).open(tx, ref(a, 'rot'), old)))).toMatch(/^InvariantError/);
  });

  it('concurrent first seals of a new org agree on one data key', async () => {
    const c = (await seedSmallOrg(t.db, 'charlie', 1)).orgId;
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => inOrg(c, (tx) => sealer.seal(tx, ref(c, `r${i}`), `v${i}`))),
    );
    expect(results.map((r) => r.status)).toEqual(Array<string>(8).fill('fulfilled'));
    expect(await keysOf(c)).toHaveLength(1);
    const opened = await inOrg(c, async (tx) => {
      const out: string[] = [];
      for (const [i, r] of results.entries()) if (r.status === 'fulfilled') out.push(await sealer.open(tx, ref(c, `r${i}`), r.value));
      return out;
    });
    expect(opened).toEqual(Array.from({ length: 8 }, (_, i) => `v${i}`));
  });
});

/** The active data key is cached per process (ACTIVE_KEY_TTL_MS), but never one that could still roll back. */
describe.each(ENGINES)('active data key cache on %s', (engine) => {
  let t: TestDatabase;
  let org: string;
  let clock = 1_000_000;
  const sealer = createSealer(new Keyring([K1]), () => clock);
  const ref = (row: string): FieldRef => ({ scope: org, table: 'assets', column: 'secret', row });
  const inOrg = <T>(fn: (tx: Tx) => Promise<T>) => t.db.withTenant({ orgId: org, projectIds: null }, fn);

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    org = (await seedSmallOrg(t.db, 'cache', 1)).orgId;
  });
  afterAll(async () => t?.drop());

  it('does not cache a first key whose transaction rolled back: the next seal makes a real one', async () => {
    await expect(
      inOrg(async (tx) => {
        await sealer.seal(tx, ref('r1'), 'lost');
        await sealer.seal(tx, ref('r2'), 'lost too'); // reads back its own uncommitted key
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await t.owner.query(`select 1 from org_keys where org_id = $1`, [org])).toHaveLength(0);
    const sealed = await inOrg((tx) => sealer.seal(tx, ref('r3'), 'kept'));
    expect(await inOrg((tx) => sealer.open(tx, ref('r3'), sealed))).toBe('kept');
    expect(await t.owner.query(`select 1 from org_keys where org_id = $1`, [org])).toHaveLength(1);
  });

  it('reuses a committed key without reading it again, and picks up a rotation after the TTL', async () => {
    const first = await inOrg((tx) => sealer.seal(tx, ref('a'), 'one'));
    // Rotate: a new active key (as a key-rotation job would), behind the cache's back.
    await t.owner.query(`update org_keys set active = false where org_id = $1`, [org]);
    const k2 = new Keyring([K1]).newDataKey(org, '00000000-0000-4000-8000-00000000c0de');
    await t.owner.query(`insert into org_keys (org_id, id, kek_id, wrapped) values ($1, $2, $3, $4)`, [org, k2.id, k2.kekId, k2.wrapped]);
    const cached = await inOrg((tx) => sealer.seal(tx, ref('b'), 'two'));
    expect(cached.split('.')[1]).toBe(first.split('.')[1]); // still the cached (old, valid) key
    clock += 61_000;
    const rotated = await inOrg((tx) => sealer.seal(tx, ref('c'), 'three'));
    expect(rotated.split('.')[1]).toBe(k2.id);
    // Everything stays readable: old data names its key.
    expect(await inOrg((tx) => sealer.open(tx, ref('b'), cached))).toBe('two');
  });
});
