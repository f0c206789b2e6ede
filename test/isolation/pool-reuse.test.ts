import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import { exec, rows, type Database, type Tx } from '../../src/db/database.js';
import { openDatabase, type OpenedDatabase } from '../../src/db/open.js';
import { createTestDatabase, ENGINES, TEST_RUNTIME_ROLE, type TestDatabase } from '../support/db.js';
import { seedSmallOrg } from '../support/tenants.js';

const ITERATIONS = 200;

interface View {
  setting: string;
  pid: number;
  assetOrgs: string[];
  projectOrgs: string[];
  orgRows: string[];
}

async function look(tx: Tx): Promise<View> {
  const s = await rows<{ setting: string; pid: number }>(
    tx, sql`select coalesce(current_setting('palisade.org_id', true), '') as setting, pg_backend_pid() as pid`);
  const assets = await rows<{ org_id: string }>(tx, sql`select org_id::text from assets`);
  const projects = await rows<{ org_id: string }>(tx, sql`select org_id::text from projects`);
  const orgs = await rows<{ org_id: string }>(tx, sql`select org_id::text from organizations`);
  return {
    setting: s[0]?.setting ?? '?', pid: s[0]?.pid ?? -1,
    assetOrgs: assets.map((r) => r.org_id), projectOrgs: projects.map((r) => r.org_id), orgRows: orgs.map((r) => r.org_id),
  };
}

/**
 * Ways a transaction can end badly while holding the (only) connection; each is followed by a
 * transaction of the other org on the same connection.
 */
type Abort = (db: Database, org: string, other: string) => Promise<unknown>;
const ABORTS: [string, Abort][] = [
  ['throws after switching the tenant setting to the other org', (db, org, other) =>
    db.withTenant({ orgId: org, projectIds: null }, async (tx) => {
      await sql`select set_config('palisade.org_id', ${other}, true), set_config('palisade.project_ids', '*', true)`.execute(tx);
      throw new Error('abort');
    })],
  ['fails on an RLS violation (row of the other org)', (db, org, other) =>
    db.withTenant({ orgId: org, projectIds: null }, (tx) =>
      exec(tx, sql`insert into projects (org_id, id, name) values (${other}, ${newId()}, 'x')`))],
  ['throws after a failing statement', (db, org) =>
    db.withTenant({ orgId: org, projectIds: null }, async (tx) => {
      await sql`select 1 / 0`.execute(tx).catch(() => undefined);
      throw new Error('abort');
    })],
  ['swallows a failing statement and returns (the commit becomes a rollback)', (db, org) =>
    db.withTenant({ orgId: org, projectIds: null }, async (tx) => {
      await exec(tx, sql`insert into projects (org_id, id, name) values (${org}, ${newId()}, 'lost')`);
      await sql`select 1 / 0`.execute(tx).catch(() => undefined);
    })],
  ['sets a session-level (not local) tenant setting, then throws', (db, org, other) =>
    db.withTenant({ orgId: org, projectIds: null }, async (tx) => {
      await sql`select set_config('palisade.org_id', ${other}, false)`.execute(tx);
      throw new Error('abort');
    })],
  // The opening (BEGIN and the binding) waits to be written with the first statement (pinned.ts
  // WITH_NEXT_STATEMENT): a transaction that makes none sends it with its COMMIT or ROLLBACK.
  ['commits without having run a statement', (db, org) => db.withTenant({ orgId: org, projectIds: null }, async () => undefined)],
  ['throws before its first statement', (db, org) =>
    db.withTenant({ orgId: org, projectIds: null }, async () => {
      throw new Error('abort');
    })],
  ['a request transaction that throws before its first statement', (db, org) =>
    db.requestTransaction(() => db.withTenant({ orgId: org, projectIds: null }, async () => {
      throw new Error('abort');
    }))],
  ['commits a leaked session-level setting of the other org', (db, org, other) =>
    db.withTenant({ orgId: org, projectIds: null }, async (tx) => {
      await sql`select set_config('palisade.org_id', ${other}, false)`.execute(tx);
    })],
];

describe.each(ENGINES)('connection reuse with alternating tenants on %s', (engine) => {
  let t: TestDatabase;
  let single: OpenedDatabase | null = null;
  /** A database whose pool has exactly one connection (PGlite has one by construction). */
  let db: Database;
  const orgs: { orgId: string; assets: number }[] = [];

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    for (const [slug, n] of [['alpha', 3], ['bravo', 5]] as const) {
      orgs.push({ orgId: (await seedSmallOrg(t.db, slug, n)).orgId, assets: n });
    }
    if (engine === 'postgres') {
      if (!t.ownerUrl || !t.runtimeUrl) throw new Error('postgres test database without urls');
      single = await openDatabase(
        { kind: 'postgres', ownerUrl: t.ownerUrl, runtimeUrl: t.runtimeUrl, runtimeRole: TEST_RUNTIME_ROLE, runtimePassword: null, poolSize: 1 },
        { migrate: false },
      );
      db = single.db;
    } else {
      db = t.db;
    }
  });
  afterAll(async () => {
    await single?.db.close();
    await single?.owner.close();
    await t?.drop();
  });

  // In full: alternates A, B, A, B… ${ITERATIONS} times with aborted transactions between, never
  // crossing tenants
  it(`alternates A, B, A, B\u2026 ${ITERATIONS} times with aborted transactions between`, async () => {
    const pids = new Set<number>();
    const outcomes = new Map<string, { rejected: number; resolved: number }>();
    for (let i = 0; i < ITERATIONS; i++) {
      const me = orgs[i % 2];
      const other = orgs[(i + 1) % 2];
      if (!me || !other) throw new Error('seed missing');
      // Every other iteration, a transaction of the other org ends badly on the same connection first.
      if (i % 2 === 1) {
        const [name, abort] = ABORTS[((i - 1) / 2) % ABORTS.length] ?? ['none', async () => undefined];
        const ok = await abort(db, other.orgId, me.orgId).then(() => true, () => false);
        const o = outcomes.get(name) ?? { rejected: 0, resolved: 0 };
        outcomes.set(name, ok ? { ...o, resolved: o.resolved + 1 } : { ...o, rejected: o.rejected + 1 });
      }
      const seen = await db.withTenant({ orgId: me.orgId, projectIds: null }, look);
      expect(seen.setting, `iteration ${i}`).toBe(me.orgId);
      expect(seen.assetOrgs, `iteration ${i}`).toEqual(Array<string>(me.assets).fill(me.orgId));
      expect(seen.projectOrgs, `iteration ${i}`).toEqual([me.orgId]);
      expect(seen.orgRows, `iteration ${i}`).toEqual([me.orgId]);
      pids.add(seen.pid);

      const idle = await db.withSystem('pool reuse test', async (tx) => ({
        settings: await rows<{ org: string; usr: string; scope: string }>(tx, sql`select
          coalesce(current_setting('palisade.org_id', true), '') as org, coalesce(current_setting('palisade.user_id', true), '') as usr,
          coalesce(current_setting('palisade.project_ids', true), '') as scope`),
        view: await look(tx),
      }));
      expect(idle.settings, `iteration ${i}`).toEqual([{ org: '', usr: '', scope: '' }]);
      expect(idle.view).toMatchObject({ assetOrgs: [], projectOrgs: [], orgRows: [] });
      pids.add(idle.view.pid);
    }
    // One physical connection served every transaction: the test really exercised reuse.
    expect(pids.size).toBe(1);
    // Each kind of abort ran, and those that throw were reported to the caller.
    expect([...outcomes.keys()].sort()).toEqual(ABORTS.map(([n]) => n).sort());
    for (const [name, o] of outcomes) {
      if (name.includes('throws') || name.includes('RLS')) expect(o, name).toEqual({ rejected: expect.any(Number) as number, resolved: 0 });
    }
  });

  it('left nothing behind from the aborted transactions', async () => {
    const projects = await t.owner.query<{ org_id: string; n: number }>(`select org_id::text, count(*)::int as n from projects group by 1 order by 1`);
    expect(projects.map((p) => p.n)).toEqual([1, 1]);
    expect(new Set(projects.map((p) => p.org_id))).toEqual(new Set(orgs.map((o) => o.orgId)));
  });

  it('keeps the runtime role on the reused connection after every kind of abort', async () => {
    for (const [, abort] of ABORTS) {
      await abort(db, orgs[0]?.orgId ?? '', orgs[1]?.orgId ?? '').catch(() => undefined);
      const who = await db.withSystem('pool reuse test', (tx) =>
        rows<{ u: string; s: boolean }>(tx, sql`select current_user as u, (select rolsuper from pg_roles where rolname = current_user) as s`));
      expect(who).toEqual([{ u: TEST_RUNTIME_ROLE, s: false }]);
    }
  });
});
