import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring, newId } from '../../crypto/index.js';
import { exec } from '../../db/database.js';
import type { ManualClock } from '../../kernel/clock.js';
import { systemContext } from '../../kernel/context.js';
import { createTestApp, TEST_KEK, type TestApp } from '../../../test/support/app.js';
import { signedIn } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { LEASE_SECONDS } from './rotation-job.js';
import { createDataKeyJob, createSealer, SWEEP_AFTER_MS, type DataKeyState, type Sealer } from './index.js';

const DAY = 86_400_000;

interface Value {
  table: 'inbound_sources' | 'webhook_endpoints';
  column: 'secret_sealed' | 'previous_secret_sealed';
  row: string;
  plain: string;
}

describe.each(ENGINES)('per-org data-key rotation on %s', (engine) => {
  let h: TestApp;
  let org: string;
  let clock: ManualClock;
  const values: Value[] = [];
  const url = (o: string, p: string) => `/api/orgs/${o}/security/${p}`;
  const keyIdOf = (sealed: string) => sealed.split('.')[1];

  /** Seals `n` inbound-source secrets and `n` webhook secrets (with a previous one each) in the org. */
  async function seed(orgId: string, n: number, sealer: Sealer = h.built.services.sealer): Promise<void> {
    const at = clock.now().toISOString();
    await h.t.db.withTenant({ orgId }, async (tx) => {
      for (let i = 0; i < n; i++) {
        const id = newId();
        const plain = `inbound-secret-${id}`;
        const sealed = await sealer.seal(tx, { scope: orgId, table: 'inbound_sources', column: 'secret_sealed', row: id }, plain);
        await exec(tx, sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
                           values (${orgId}, ${id}, 'standard', ${`s${i}`}, ${sealed}, ${newId()}, ${at})`);
        values.push({ table: 'inbound_sources', column: 'secret_sealed', row: id, plain });
        const ep = newId();
        const cur = await sealer.seal(tx, { scope: orgId, table: 'webhook_endpoints', column: 'secret_sealed', row: ep }, `whsec-current-${ep}`);
        const prev = await sealer.seal(tx, { scope: orgId, table: 'webhook_endpoints', column: 'previous_secret_sealed', row: ep }, `whsec-prev-${ep}`);
        await exec(tx, sql`insert into webhook_endpoints (org_id, id, url, events, secret_sealed, previous_secret_sealed, created_by, created_at, updated_at)
                           values (${orgId}, ${ep}, 'https://example.test/hook', ${['org.updated']}, ${cur}, ${prev}, ${newId()}, ${at}, ${at})`);
        values.push({ table: 'webhook_endpoints', column: 'secret_sealed', row: ep, plain: `whsec-current-${ep}` });
        values.push({ table: 'webhook_endpoints', column: 'previous_secret_sealed', row: ep, plain: `whsec-prev-${ep}` });
      }
    });
  }

  /** Every seeded value as stored now, opened by a process that never saw this org (cold cache). */
  async function stored(orgId: string): Promise<{ keyId: string | undefined; opened: string; plain: string }[]> {
    const fresh = createSealer(new Keyring([TEST_KEK]));
    return h.t.db.withTenant({ orgId }, async (tx) => {
      const out = [];
      for (const v of values) {
        const r = await sql<{ value: string }>`select ${sql.ref(v.column)} as value from ${sql.table(v.table)} where org_id = ${orgId} and id = ${v.row}`.execute(tx);
        const sealed = r.rows[0]?.value ?? '';
        out.push({ keyId: keyIdOf(sealed), opened: await fresh.open(tx, { scope: orgId, table: v.table, column: v.column, row: v.row }, sealed), plain: v.plain });
      }
      return out;
    });
  }

  const state = () => h.built.services.dataKeys.state(org);
  const owner = async () => signedIn(h, h.user('acme', 'owner').email);
  const job = (opts: { batchSize?: number; beforeCommit?: () => void } = {}) =>
    createDataKeyJob({ db: h.t.db, clock, logger: h.logger, keys: h.built.services.dataKeys, batchSize: opts.batchSize ?? 7, beforeCommit: opts.beforeCommit });
  const auditActions = async (orgId: string) =>
    (await h.t.owner.query<{ action: string }>(`select action from audit_events where org_id = $1 and action like 'org_key.%' order by seq`, [orgId])).map((r) => r.action);

  beforeAll(async () => {
    h = await createTestApp(engine);
    clock = h.clock;
    org = h.orgId('acme');
  });
  afterAll(async () => h?.close());

  it('refuses to rotate an org that has no data key yet (nothing sealed): 409, nothing written', async () => {
    // Every org audited since migration 034 has a key (its events are sealed): an org row alone has none.
    const bare = newId();
    await h.t.owner.query(`insert into organizations (org_id, slug, name) values ($1, $2, 'Bare')`, [bare, `bare-${bare.slice(0, 8)}`]);
    await expect(h.built.services.dataKeys.rotate(systemContext('test'), bare)).rejects.toMatchObject({ code: 'conflict' });
    expect(await h.t.owner.query('select 1 from org_keys where org_id = $1', [bare])).toEqual([]);
    expect(await h.t.owner.query('select 1 from org_key_rotations where org_id = $1', [bare])).toEqual([]);
    expect(await h.built.services.dataKeys.state(bare)).toMatchObject({ activeKey: null, rotation: null, retiredKeys: [] });
  });

  it('answers 404 for an org the caller is not in, and 403 to an admin (the action is the owner\u2019s)', async () => {
    const c = await owner();
    expect((await c.call('POST', url(newId(), 'rotate-data-key'))).statusCode).toBe(404);
    expect((await c.call('POST', url(h.orgId('globex'), 'rotate-data-key'))).statusCode).toBe(404);
    const admin = await signedIn(h, h.user('acme', 'admin').email);
    expect((await admin.call('POST', url(org, 'rotate-data-key'))).statusCode).toBe(403);
    expect((await admin.call('GET', url(org, 'data-key'))).statusCode).toBe(200);
  });

  it('rotates: new seals use the new key at once, the job moves every value in batches, and the final sweep catches a stale instance\u2019s writes', async () => {
    await seed(org, 10);
    // Another instance that sealed before the rotation keeps the old key cached for its TTL.
    const stale = createSealer(new Keyring([TEST_KEK]));
    await h.t.db.withTenant({ orgId: org }, (tx) => stale.seal(tx, { scope: org, table: 'x', column: 'y', row: 'z' }, 'warm the cache'));
    const before = await state();
    // The org's audit events are sealed values too (their personal part): the rotation walks them.
    const events = Number((await h.t.owner.query<{ n: string }>('select count(*) as n from audit_events where org_id = $1 and personal_sealed is not null', [org]))[0]?.n);
    expect(events).toBeGreaterThan(0);
    const res = await (await owner()).call('POST', url(org, 'rotate-data-key'));
    expect(res.statusCode, res.body).toBe(202);
    const s = res.json<DataKeyState>();
    expect(s.rotation).toMatchObject({ status: 'running', phase: 'pass', trigger: 'manual', fromKeyId: before.activeKey?.id, total: 30 + events, done: 0 });
    expect(s.activeKey?.id).toBe(s.rotation?.toKeyId);
    expect(s.retiredKeys[0]).toMatchObject({ id: before.activeKey?.id, destroyedAt: null });
    expect(new Date(s.retiredKeys[0]?.destroyAfter ?? 0).getTime() - clock.now().getTime()).toBe(30 * DAY);

    // This instance seals with the new key at once; the stale one still with the old.
    await seed(org, 1);
    await seed(org, 1, stale);
    const [, , , , newest] = (await stored(org)).slice(-6);
    expect(newest?.keyId).toBe(before.activeKey?.id);
    expect((await stored(org)).slice(-6, -3).map((v) => v.keyId)).toEqual([s.activeKey?.id, s.activeKey?.id, s.activeKey?.id]);

    await job().drain();
    expect((await state()).rotation).toMatchObject({ status: 'running', phase: 'wait' });
    // The pass ran before the stale write's instance dropped its cache: the sweep is what catches it.
    clock.advance(SWEEP_AFTER_MS);
    await job().drain();
    const after = await state();
    expect(after.rotation).toMatchObject({ status: 'done', finishedAt: clock.now().toISOString() });
    expect(after.rotation?.done).toBe(after.rotation?.total);
    // The seeds, the stale instance's three writes, the audit events sealed under the old key, and
    // the rotation's own event (sealed in its transaction, with the key this process still cached).
    expect(after.rotation?.done).toBeGreaterThanOrEqual(33 + events);
    for (const v of await stored(org)) {
      expect(v.keyId).toBe(s.activeKey?.id);
      expect(v.opened).toBe(v.plain);
    }
    expect(await auditActions(org)).toEqual(['org_key.rotated', 'org_key.rotation_finished']);
  });

  it('lets one of two concurrent rotations win; the other is answered 409', async () => {
    const [a, b] = await Promise.all([(await owner()).call('POST', url(org, 'rotate-data-key')), (await owner()).call('POST', url(org, 'rotate-data-key'))]);
    expect([a?.statusCode, b?.statusCode].sort()).toEqual([202, 409]);
    // A third while it runs: 409 too.
    expect((await (await owner()).call('POST', url(org, 'rotate-data-key'))).statusCode).toBe(409);
    await job().drain();
    clock.advance(SWEEP_AFTER_MS);
    await job().drain();
    expect((await state()).rotation?.status).toBe('done');
  });

  it('resumes a job killed mid-rotation without double-encrypting or losing a value', async () => {
    const res = await (await owner()).call('POST', url(org, 'rotate-data-key'));
    expect(res.statusCode, res.body).toBe(202);
    const target = res.json<DataKeyState>().activeKey?.id;
    const total = res.json<DataKeyState>().rotation?.total ?? 0;
    // The seeded values and the org's sealed audit events.
    expect(total).toBeGreaterThan(values.length);
    // Two batches commit; the third dies after its writes, before its commit.
    let batches = 0;
    await job({
      batchSize: 5,
      beforeCommit: () => {
        if (++batches === 3) throw new Error('killed');
      },
    }).tick();
    expect(h.logs.join('')).toContain('data-key job turn failed');
    const mid = await state();
    expect(mid.rotation).toMatchObject({ status: 'running', done: 10 });
    const midValues = await stored(org);
    expect(midValues.filter((v) => v.keyId === target)).toHaveLength(10);
    for (const v of midValues) expect(v.opened).toBe(v.plain);

    // The dead worker's lease on the org runs out; another worker resumes from the cursor.
    clock.advance((LEASE_SECONDS + 1) * 1000);
    await job({ batchSize: 5 }).drain();
    clock.advance(SWEEP_AFTER_MS);
    await job({ batchSize: 5 }).drain();
    const end = await state();
    // Audit events sealed while it ran (under a key cached before it) are counted as the sweep finds them.
    expect(end.rotation).toMatchObject({ status: 'done' });
    expect(end.rotation?.done).toBe(end.rotation?.total);
    expect(end.rotation?.total).toBeGreaterThanOrEqual(total);
    for (const v of await stored(org)) {
      expect(v.keyId).toBe(target);
      // One open gives the plaintext: nothing was sealed twice.
      expect(v.opened).toBe(v.plain);
    }
  });

  it('rolls back within the window: the retired key is active again and values walk back under it', async () => {
    const before = await state();
    const back = before.retiredKeys.find((k) => k.destroyedAt === null && k.retiredAt !== null);
    const rolled = await h.built.services.dataKeys.rollback(systemContext('test'), org);
    expect(rolled.activeKey?.id).toBe(back?.id);
    expect(rolled.rotation).toMatchObject({ trigger: 'rollback', status: 'running', toKeyId: back?.id, fromKeyId: before.activeKey?.id });
    await job().drain();
    clock.advance(SWEEP_AFTER_MS);
    await job().drain();
    for (const v of await stored(org)) {
      expect(v.keyId).toBe(back?.id);
      expect(v.opened).toBe(v.plain);
    }
    expect((await auditActions(org)).at(-2)).toBe('org_key.rolled_back');
  });

  it('destroys retired keys after the rollback window (audited), keeps every value readable, and rotates on schedule', async () => {
    clock.advance(31 * DAY);
    await h.t.owner.query('update data_key_due set due_at = now() - interval \'1 day\'');
    await job().drain();
    const s = await state();
    const destroyed = s.retiredKeys.filter((k) => k.destroyedAt !== null);
    expect(destroyed.length).toBeGreaterThan(0);
    const rowsLeft = await h.t.owner.query<{ wrapped: string | null; kek_id: string | null }>(
      'select wrapped, kek_id from org_keys where org_id = $1 and destroyed_at is not null', [org]);
    expect(rowsLeft.every((r) => r.wrapped === null && r.kek_id === null)).toBe(true);
    expect(await auditActions(org)).toContain('org_key.destroyed');
    // A rollback to a destroyed key is refused.
    await expect(h.built.services.dataKeys.rollback(systemContext('test'), org)).rejects.toMatchObject({ code: 'conflict' });
    for (const v of await stored(org)) expect(v.opened).toBe(v.plain);

    // 90 days after the active key was created, the worker rotates it.
    clock.advance(90 * DAY);
    await h.t.owner.query('update data_key_due set due_at = now() - interval \'1 day\'');
    await job().drain();
    expect((await state()).rotation).toMatchObject({ trigger: 'schedule' });
  });

  it('keeps a retired key past its window while a value is still under it (never destroys what is still needed)', async () => {
    clock.advance(SWEEP_AFTER_MS);
    await job().drain();
    const s = await state();
    expect(s.rotation).toMatchObject({ trigger: 'schedule', status: 'done' });
    const retired = s.retiredKeys.find((k) => k.destroyedAt === null);
    // A stray value under the retired key (written outside the sweep's bound).
    const id = newId();
    await h.t.db.withTenant({ orgId: org }, async (tx) => {
      const ref = { scope: org, table: 'inbound_sources', column: 'secret_sealed', row: id };
      const sealed = await h.built.services.sealer.resealer(tx, retired?.id ?? '')(ref, await h.built.services.sealer.seal(tx, ref, 'stray'));
      await exec(tx, sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
                         values (${org}, ${id}, 'standard', 'stray', ${sealed}, ${newId()}, now())`);
    });
    values.push({ table: 'inbound_sources', column: 'secret_sealed', row: id, plain: 'stray' });
    clock.advance(31 * DAY);
    await h.t.owner.query('update data_key_due set due_at = now() - interval \'1 day\'');
    await job().drain();
    expect((await state()).retiredKeys.find((k) => k.id === retired?.id)?.destroyedAt).toBeNull();
    expect(h.logs.join('')).toContain('retired data keys past their rollback window kept');
    for (const v of await stored(org)) expect(v.opened).toBe(v.plain);
  });

  it('refuses, for the runtime role, key-material rewrites and un-destroying a key', async () => {
    const attempt = (q: ReturnType<typeof sql>) =>
      h.t.db.withTenant({ orgId: org }, (tx) => exec(tx, q)).then(() => 'ok', (err: { code?: string }) => err.code);
    expect(await attempt(sql`update org_keys set wrapped = 'x' where org_id = ${org} and active`)).toBe('42501');
    expect(await attempt(sql`update org_keys set destroyed_at = null where org_id = ${org} and destroyed_at is not null`)).toBe('42501');
    expect(await attempt(sql`update org_keys set active = false where org_id = ${org} and active`)).toBe('42501');
  });
});
