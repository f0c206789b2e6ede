import pg from 'pg';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { as, client, expect, newUser } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('session rotation racing "sign out everywhere" (postgres)', () => {
  let h: TestApp;
  beforeAll(async () => { h = await createTestApp('postgres'); });
  afterAll(async () => h?.close());

  it('F6: the id minted by a rotation racing revokeAll is dead (stale session epoch)', async () => {
    const acme = h.orgId('acme');
    const victim = await newUser(h, acme, 'member');
    const stolen = client(h, await h.cookieFor(victim.email)); // attacker's copy of the victim's session
    const owner = await as(h, h.user('acme', 'owner').email);
    // Admin reacts to a compromise: demote (marks sessions rotate_pending) ...
    expect((await owner.call('PATCH', `/api/orgs/${acme}/members/${victim.id}`, { role: 'viewer' })).statusCode).toBe(204);

    // Orchestration only: hold the users row so the rotation's INSERT (FK check) pauses after its UPDATE.
    const lock = new pg.Client({ connectionString: h.t.ownerUrl! });
    await lock.connect();
    await lock.query('begin');
    await lock.query('select 1 from users where id = $1 for update', [victim.id]);
    const mon = new pg.Client({ connectionString: h.t.ownerUrl! });
    await mon.connect();
    const waiting = async (n: number) => {
      for (let i = 0; i < 200; i++) {
        const r = await mon.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'");
        if (r.rows[0].n >= n) return;
        await sleep(10);
      }
      const dbg = await mon.query("select state, wait_event_type, wait_event, left(query,80) q from pg_stat_activity where datname = current_database()"); throw new Error("not waiting " + n + JSON.stringify(dbg.rows));
    };
    const r1 = stolen.call('GET', '/api/me'); // attacker request: rotates
    await waiting(1);
    const r2 = owner.call('POST', `/api/orgs/${acme}/members/${victim.id}/sessions/revoke`); // ... then "sign out everywhere"
    await waiting(2);
    await lock.query('commit');
    await lock.end();
    await mon.end();
    const [a, b] = await Promise.all([r1, r2]);
    expect(a.statusCode).toBe(200);
    expect(b.statusCode).toBe(200);
    const after = await stolen.call('GET', '/api/me'); // the rotated cookie
    // The rotated row may survive the UPDATE's snapshot, but it carries the epoch from before the
    // revocation, so it is dead: the stolen cookie gets 401.
    expect(after.statusCode).toBe(401);
    const live = await h.t.owner.query<{ n: number }>(
      'select count(*)::int as n from sessions s join users u on u.id = s.user_id where s.user_id = $1 and s.revoked_at is null and s.epoch = u.session_epoch',
      [victim.id],
    );
    expect(live[0]?.n).toBe(0);
  });
});
