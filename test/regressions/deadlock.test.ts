import pg from 'pg';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { as, expect, newUser } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('lock-order deadlock (postgres)', () => {
  let h: TestApp;
  beforeAll(async () => { h = await createTestApp('postgres'); });
  afterAll(async () => h?.close());

  it('F10: "change role" and "sign out everywhere" on the same member at once both succeed (one lock order, no deadlock)', async () => {
    const acme = h.orgId('acme');
    const victim = await newUser(h, acme, 'member');
    await h.cookieFor(victim.email); // the victim has a live session
    const owner = await as(h, h.user('acme', 'owner').email);
    const admin = await as(h, h.user('acme', 'admin').email);
    const lock = new pg.Client({ connectionString: h.t.ownerUrl! });
    const mon = new pg.Client({ connectionString: h.t.ownerUrl! });
    await lock.connect(); await mon.connect();
    const waiting = async (n: number) => {
      for (let i = 0; i < 300; i++) {
        const r = await mon.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'");
        if (r.rows[0].n >= n) return;
        await sleep(10);
      }
      throw new Error(`not waiting ${n}`);
    };
    // Orchestration only: hold the org's audit head briefly so both requests queue in this order.
    await lock.query('begin');
    await lock.query('select 1 from audit_heads where org_id = $1 for update', [acme]);
    const change = owner.call('PATCH', `/api/orgs/${acme}/members/${victim.id}`, { role: 'viewer' }); // head → then sessions
    await waiting(1);
    const revoke = admin.call('POST', `/api/orgs/${acme}/members/${victim.id}/sessions/revoke`); // sessions → then head
    await waiting(2);
    await lock.query('commit');
    const [a, b] = await Promise.all([change, revoke]);
    await lock.end(); await mon.end();
    console.log(a.statusCode, a.body, b.statusCode, b.body);
    expect([a.statusCode, b.statusCode]).toEqual([204, 200]);
  });
});
