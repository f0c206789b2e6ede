import { sql, type RawBuilder } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec, type Database, type TenantBinding } from '../../src/db/database.js';
import type { AuditWriter } from '../../src/domains/audit/index.js';
import { systemContext } from '../../src/kernel/context.js';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/db.js';
import { attempt, auditWriter, seedTenant, type SeededTenant } from '../support/tenants.js';

interface Snapshot {
  n: number;
  digest: string;
}

describe.each(ENGINES)('audit_events is append-only for the runtime role on %s', (engine) => {
  let t: TestDatabase;
  let audit: AuditWriter;
  let a: SeededTenant;
  let b: SeededTenant;

  /** Count and a digest of every stored event (all columns), read by the owner. */
  const snapshot = async (): Promise<Snapshot> => {
    const r = await t.owner.query<Snapshot>(
      `select count(*)::int as n, coalesce(md5(string_agg(e::text, '|' order by org_id, seq)), '') as digest from audit_events e`,
    );
    return r[0] ?? { n: -1, digest: '' };
  };

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    audit = auditWriter(t.db);
    a = await seedTenant(t.db, audit, 'alpha');
    b = await seedTenant(t.db, audit, 'bravo');
  });
  afterAll(async () => t?.drop());

  const own = (): TenantBinding => ({ orgId: a.orgId, projectIds: null });

  const attacks = (): [string, RawBuilder<unknown>][] => [
    ['update own event', sql`update audit_events set action = 'nothing.happened' where org_id = ${a.orgId}`],
    ['update own chain link', sql`update audit_events set hash = prev_hash where org_id = ${a.orgId} and seq = 1`],
    ['delete own events', sql`delete from audit_events where org_id = ${a.orgId}`],
    ['delete the newest own event', sql`delete from audit_events where org_id = ${a.orgId} and seq = (select max(seq) from audit_events)`],
    ['truncate', sql`truncate audit_events`],
    ['update other org', sql`update audit_events set action = 'x' where org_id = ${b.orgId}`],
    ['delete other org', sql`delete from audit_events where org_id = ${b.orgId}`],
  ];

  it('has events of both orgs to protect', async () => {
    const r = await t.owner.query<{ org_id: string; n: number }>(`select org_id::text, count(*)::int as n from audit_events group by 1`);
    expect(new Map(r.map((x) => [x.org_id, x.n]))).toEqual(new Map([[a.orgId, 2], [b.orgId, 2]]));
  });

  it.each([0, 1, 2, 3, 4, 5, 6])('refuses attack #%i with a privilege error, inside its own tenant', async (i) => {
    const before = await snapshot();
    const [name, q] = attacks()[i] ?? ['?', sql`select 1`];
    const r = await attempt(t.db, own(), (tx) => exec(tx, q));
    expect(r.state, name).toBe('42501');
    expect(r.message, name).toMatch(/permission denied for (table|relation) audit_events/);
    expect(await snapshot()).toEqual(before);
  });

  it('refuses the same outside any tenant (withSystem) and with a user binding', async () => {
    for (const [name, q] of attacks()) {
      const asSystem = await t.db.withSystem('isolation test', (tx) => exec(tx, q)).then(() => 'ok', (e: { code?: string }) => e.code);
      expect(asSystem, name).toBe('42501');
      const asUser = await attempt(t.db, { orgId: null, userId: a.ownerId }, (tx) => exec(tx, q));
      expect(asUser.state, name).toBe('42501');
    }
  });

  it('has no UPDATE, DELETE or TRUNCATE privilege at all on audit_events (catalog)', async () => {
    const r = await t.owner.query<{ p: string; ok: boolean }>(
      `select p, has_table_privilege($1, 'audit_events', p) as ok
       from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'TRIGGER', 'REFERENCES']) p`,
      [t.db.runtimeRole],
    );
    expect(Object.fromEntries(r.map((x) => [x.p, x.ok]))).toEqual({
      SELECT: true, INSERT: true, UPDATE: false, DELETE: false, TRUNCATE: false, TRIGGER: false, REFERENCES: false,
    });
  });

  it('cannot delete chain heads either', async () => {
    const r = await attempt(t.db, own(), (tx) => exec(tx, sql`delete from audit_heads where org_id = ${a.orgId}`));
    expect(r.state).toBe('42501');
  });

  it('still appends through the writer (the one allowed write), in the caller\'s transaction', async () => {
    const before = await snapshot();
    await t.db.withTenant(own(), (tx) => audit.append(tx, a.orgId, systemContext('test'), { action: 'asset.created' }));
    const after = await snapshot();
    expect(after.n).toBe(before.n + 1);
    const last = await t.owner.query<{ action: string; seq: number }>(
      `select action, seq::int as seq from audit_events where org_id = $1 order by seq desc limit 1`, [a.orgId]);
    expect(last[0]?.action).toBe('asset.created');
  });

  it('an append rolled back with its transaction leaves nothing', async () => {
    const before = await snapshot();
    const failing = (db: Database) => db.withTenant(own(), async (tx) => {
      await audit.append(tx, a.orgId, systemContext('test'), { action: 'asset.deleted' });
      throw new Error('the change failed');
    });
    await expect(failing(t.db)).rejects.toThrow('the change failed');
    expect(await snapshot()).toEqual(before);
  });

  it('even the owner cannot rewrite history: the append-only trigger refuses', async () => {
    await expect(t.owner.query(`update audit_events set action = 'x' where org_id = $1`, [a.orgId])).rejects.toThrow(/append-only/);
    await expect(t.owner.query(`delete from audit_events where org_id = $1`, [a.orgId])).rejects.toThrow(/append-only/);
  });
});
