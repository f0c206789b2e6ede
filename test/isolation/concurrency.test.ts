import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import { exec, rows, type Tx } from '../../src/db/database.js';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/db.js';
import { seedSmallOrg } from '../support/tenants.js';

const TENANTS = 50;

/** Yields to the event loop so that other transactions get a chance to interleave. */
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

interface Seen {
  setting: string;
  assetOrgs: string[];
  projectOrgs: string[];
  inserted: string[];
}

describe.each(ENGINES)('concurrent transactions of many tenants on %s', (engine) => {
  let t: TestDatabase;
  const orgs: { orgId: string; projectId: string; assets: number }[] = [];

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    for (let i = 0; i < TENANTS; i++) {
      // Distinct asset counts: a transaction reading another tenant's rows would see the wrong number.
      const assets = (i % 7) + 1;
      orgs.push({ ...(await seedSmallOrg(t.db, `org-${String(i).padStart(2, '0')}`, assets)), assets });
    }
  });
  afterAll(async () => t?.drop());

  /** A transaction that reads, yields, writes and reads again, so that interleaving would show. */
  const work = (org: (typeof orgs)[number], fail: boolean) =>
    t.db.withTenant({ orgId: org.orgId, projectIds: null }, async (tx: Tx): Promise<Seen> => {
      await tick();
      const setting = (await rows<{ v: string }>(tx, sql`select current_setting('palisade.org_id', true) as v`))[0]?.v ?? '?';
      await tick();
      const assetOrgs = (await rows<{ org_id: string }>(tx, sql`select org_id::text from assets`)).map((r) => r.org_id);
      await tick();
      await exec(tx, sql`insert into assets (org_id, project_id, id, name, kind) values (${org.orgId}, ${org.projectId}, ${newId()}, 'concurrent', 'host')`);
      if (fail) throw new Error(`abort ${org.orgId}`);
      await tick();
      const projectOrgs = (await rows<{ org_id: string }>(tx, sql`select org_id::text from projects`)).map((r) => r.org_id);
      const inserted = (await rows<{ org_id: string }>(tx, sql`select org_id::text from assets where name = 'concurrent'`)).map((r) => r.org_id);
      return { setting, assetOrgs, projectOrgs, inserted };
    });

  it(`${TENANTS} concurrent withTenant transactions each see only their own org`, async () => {
    const results = await Promise.all(orgs.map((o) => work(o, false)));
    results.forEach((seen, i) => {
      const org = orgs[i];
      if (!org) throw new Error('missing org');
      expect(seen).toEqual({
        setting: org.orgId,
        assetOrgs: Array<string>(org.assets).fill(org.orgId),
        projectOrgs: [org.orgId],
        inserted: [org.orgId],
      });
    });
    const written = await t.owner.query<{ n: number }>(`select count(distinct org_id)::int as n from assets where name = 'concurrent'`);
    expect(written[0]?.n).toBe(TENANTS);
  });

  it('failing transactions among them roll back alone and disturb no neighbour', async () => {
    const before = await t.owner.query<{ n: number }>(`select count(*)::int as n from assets where name = 'concurrent'`);
    const settled = await Promise.allSettled(orgs.map((o, i) => work(o, i % 3 === 0)));
    let failed = 0;
    settled.forEach((s, i) => {
      const org = orgs[i];
      if (!org) throw new Error('missing org');
      if (i % 3 === 0) {
        failed++;
        expect(s.status).toBe('rejected');
        return;
      }
      expect(s.status).toBe('fulfilled');
      if (s.status !== 'fulfilled') return;
      expect(s.value.setting).toBe(org.orgId);
      expect(s.value.assetOrgs).toEqual(Array<string>(org.assets + 1).fill(org.orgId));
      expect(s.value.inserted).toEqual([org.orgId, org.orgId]);
    });
    const after = await t.owner.query<{ n: number }>(`select count(*)::int as n from assets where name = 'concurrent'`);
    expect((after[0]?.n ?? 0) - (before[0]?.n ?? 0)).toBe(TENANTS - failed);
  });

  it('a withSystem transaction running among them sees no tenant row', async () => {
    const [, system] = await Promise.all([
      Promise.all(orgs.map((o) => work(o, false))),
      Promise.all(Array.from({ length: 10 }, () => t.db.withSystem('concurrency test', async (tx) => {
        await tick();
        return (await rows<{ n: number }>(tx, sql`select count(*)::int as n from assets`))[0]?.n;
      }))),
    ]);
    expect(system).toEqual(Array<number>(10).fill(0));
  });
});
