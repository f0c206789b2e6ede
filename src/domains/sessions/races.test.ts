/**
 * Session rows under concurrent member changes, on PostgreSQL (PGlite has one connection and no
 * lock waits). Each test holds a row lock of its own to make two requests queue in a chosen
 * order (orchestration only), then checks that both finish and that no session outlives them.
 * The rule under test: one lock order, the member's session rows before the org's audit head.
 * Ids: F6, F10 are the first attacker review (174568f); S2 the second review (the read path).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { client, signedIn } from '../../../test/support/client.js';
import { lockWaiters } from '../../../test/support/locks.js';
import { newUser } from '../../../test/support/users.js';

describe('session rows under concurrent member changes (postgres)', () => {
  let h: TestApp;
  beforeAll(async () => { h = await createTestApp('postgres'); });
  afterAll(async () => h?.close());

  // review F10
  it('"change role" and "sign out everywhere" on one member at once both succeed (no deadlock)', async () => {
    const acme = h.orgId('acme');
    const victim = await newUser(h, acme, 'member');
    await h.cookieFor(victim.email); // the victim has a live session
    const owner = await signedIn(h, h.user('acme', 'owner').email);
    const admin = await signedIn(h, h.user('acme', 'admin').email);
    const lock = new pg.Client({ connectionString: h.t.ownerUrl! });
    const mon = new pg.Client({ connectionString: h.t.ownerUrl! });
    await lock.connect(); await mon.connect();
    // Orchestration only: hold the org's audit head briefly so both requests queue in this order.
    await lock.query('begin');
    await lock.query('select 1 from audit_heads where org_id = $1 for update', [acme]);
    const change = owner.call('PATCH', `/api/orgs/${acme}/members/${victim.id}`, { role: 'viewer' }); // head → then sessions
    await lockWaiters(mon, 1);
    const revoke = admin.call('POST', `/api/orgs/${acme}/members/${victim.id}/sessions/revoke`); // sessions → then head
    await lockWaiters(mon, 2);
    await lock.query('commit');
    const [a, b] = await Promise.all([change, revoke]);
    await lock.end(); await mon.end();
    console.log(a.statusCode, a.body, b.statusCode, b.body);
    expect([a.statusCode, b.statusCode]).toEqual([204, 200]);
  });

  // review S2 (SOUND: the attack was tried and refused). A refused GET used to keep its session
  // row (the touch) to the end of its transaction, then take the audit head: the same order as a
  // role change (sessions, then head). The touch is now written behind the request, in its own
  // transaction (touches.ts), which skips a locked session row rather than wait for it; the two
  // must still never deadlock.
  it('a refused signed-in read and a role change on the same member do not deadlock', async () => {
    const acme = h.orgId('acme');
    const victim = await newUser(h, acme, 'member');
    const v = await signedIn(h, victim.email);
    const owner = await signedIn(h, h.user('acme', 'owner').email);
    // The victim's session is due for its last_seen touch (the touch interval is 60 s).
    h.clock.advance(61_000);
    const lock = new pg.Client({ connectionString: h.t.ownerUrl! });
    const mon = new pg.Client({ connectionString: h.t.ownerUrl! });
    await lock.connect();
    await mon.connect();
    try {
      // Orchestration only: hold the org's audit head so that both requests queue.
      await lock.query('begin');
      await lock.query('select 1 from audit_heads where org_id = $1 for update', [acme]);
      const change = owner.call('PATCH', `/api/orgs/${acme}/members/${victim.id}`, { role: 'viewer' }); // victim's sessions (markRotate) → head
      await lockWaiters(mon, 1);
      const refused = v.call('GET', `/api/orgs/${acme}/settings`); // refused → head (its touch, apart, skips the locked session row)
      await lockWaiters(mon, 2);
      await lock.query('commit');
      const started = Date.now();
      const [c, r] = await Promise.all([change, refused]);
      const took = Date.now() - started;
      const denied = await h.t.owner.query<{ n: number }>(
        "select count(*)::int as n from audit_events where org_id = $1 and action = 'authz.denied' and actor_id = $2",
        [acme, victim.id],
      );
      expect(c.statusCode, c.body).toBe(204);
      expect(r.statusCode).toBe(403);
      expect({ deniedAudited: denied[0]?.n, stalled: took >= 900 }).toEqual({ deniedAudited: 1, stalled: false });
    } finally {
      await lock.query('rollback').catch(() => undefined);
      await lock.end();
      await mon.end();
    }
  });

  // review F6. The rotated row may survive the UPDATE's snapshot, but it carries the session epoch
  // from before the revocation, so it is dead.
  it('the session id minted by a rotation racing "sign out everywhere" is dead (stale epoch)', async () => {
    const acme = h.orgId('acme');
    const victim = await newUser(h, acme, 'member');
    const stolen = client(h, await h.cookieFor(victim.email)); // attacker's copy of the victim's session
    const owner = await signedIn(h, h.user('acme', 'owner').email);
    // Admin reacts to a compromise: demote (marks sessions rotate_pending) ...
    expect((await owner.call('PATCH', `/api/orgs/${acme}/members/${victim.id}`, { role: 'viewer' })).statusCode).toBe(204);

    // Orchestration only: hold the users row so the rotation's INSERT (FK check) pauses after its UPDATE.
    const lock = new pg.Client({ connectionString: h.t.ownerUrl! });
    await lock.connect();
    await lock.query('begin');
    await lock.query('select 1 from users where id = $1 for update', [victim.id]);
    const mon = new pg.Client({ connectionString: h.t.ownerUrl! });
    await mon.connect();
    const r1 = stolen.call('GET', '/api/me'); // attacker request: rotates
    await lockWaiters(mon, 1);
    const r2 = owner.call('POST', `/api/orgs/${acme}/members/${victim.id}/sessions/revoke`); // ... then "sign out everywhere"
    await lockWaiters(mon, 2);
    await lock.query('commit');
    await lock.end();
    await mon.end();
    const [a, b] = await Promise.all([r1, r2]);
    expect(a.statusCode).toBe(200);
    expect(b.statusCode).toBe(200);
    const after = await stolen.call('GET', '/api/me'); // the rotated cookie
    // The stolen cookie gets 401.
    expect(after.statusCode).toBe(401);
    const live = await h.t.owner.query<{ n: number }>(
      'select count(*)::int as n from sessions s join users u on u.id = s.user_id where s.user_id = $1 and s.revoked_at is null and s.epoch = u.session_epoch',
      [victim.id],
    );
    expect(live[0]?.n).toBe(0);
  });
});
