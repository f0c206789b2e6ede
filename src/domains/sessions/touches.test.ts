/**
 * Session touches by group commit (touches.ts), on both engines: the touches noted together are
 * written in one transaction, a session's concurrent touches in one row update, a touch never
 * revives a revoked session nor waits for a row another transaction holds, and a failed write is
 * reported without stopping later ones. On
 * PostgreSQL, through the app: many requests of one due session at once (more than the pool's
 * connections) all succeed, and the row records the activity.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../db/database.js';
import { systemContext } from '../../kernel/context.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { signedIn } from '../../../test/support/client.js';
import { newUser } from '../../../test/support/users.js';
import { createSessionTouches } from './touches.js';

/** The app's own database; counts the transactions the toucher opens, each held until `gate` opens. */
function counting(db: Database, gate: Promise<void> = Promise.resolve()): { db: Database; transactions: () => number } {
  let n = 0;
  const wrapped = Object.create(db) as Database;
  wrapped.withSystem = async (reason, fn) => {
    n++;
    await gate;
    return db.withSystem(reason, fn);
  };
  return { db: wrapped, transactions: () => n };
}

const failOnError = (err: unknown) => { throw err; };

for (const engine of ['pglite', 'postgres'] as const) {
  describe(`session touches (${engine})`, () => {
    let h: TestApp;
    beforeAll(async () => { h = await createTestApp(engine); });
    afterAll(async () => h?.close());

    async function freshSessions(n: number): Promise<string[]> {
      const acme = h.orgId('acme');
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const u = await newUser(h, acme, 'member');
        await h.cookieFor(u.email);
        const r = await h.t.owner.query<{ id: string }>('select id from sessions where user_id = $1', [u.id]);
        ids.push(r[0]!.id);
      }
      return ids;
    }

    const rowsOf = (ids: string[]) =>
      h.t.owner.query<{ id: string; last_seen_at: Date; longest_idle_seconds: number }>(
        'select id, last_seen_at, longest_idle_seconds from sessions where id = any($1::uuid[]) order by id', [ids]);

    it('writes the touches noted together in one transaction, each session once with its latest time and longest gap', async () => {
      const ids = await freshSessions(6);
      const c = counting(h.t.db);
      const touches = createSessionTouches({ db: c.db, onError: failOnError });
      const base = Date.parse('2031-01-01T00:00:00Z');
      // Three touches per session, in scrambled order: the row must get the latest and the longest.
      ids.forEach((id, i) => {
        touches.touch(id, new Date(base + 2000 + i), 70 + i);
        touches.touch(id, new Date(base + 5000 + i), 61);
        touches.touch(id, new Date(base + 1000 + i), 90 + i);
      });
      await touches.settled();
      expect(c.transactions()).toBe(1);
      const got = await rowsOf(ids);
      for (const r of got) {
        const i = ids.indexOf(r.id);
        expect({ at: r.last_seen_at.getTime(), gap: r.longest_idle_seconds }).toEqual({ at: base + 5000 + i, gap: 90 + i });
      }
    });

    it('touches noted while a write is in flight go out together in the next, and verification sees them at once', async () => {
      const [a, b, d] = await freshSessions(3);
      let open!: () => void;
      const c = counting(h.t.db, new Promise((resolve) => (open = resolve)));
      const touches = createSessionTouches({ db: c.db, onError: failOnError });
      const at = Date.parse('2031-02-01T00:00:00Z');
      touches.touch(a!, new Date(at), 61);
      while (c.transactions() === 0) await new Promise((r) => setImmediate(r)); // the first write has started, held at the gate
      touches.touch(a!, new Date(at + 10), 62);
      touches.touch(b!, new Date(at + 20), 61);
      touches.touch(d!, new Date(at + 30), 61);
      // Before any of it is written, this process already knows it.
      expect([touches.noted(a!)?.at.getTime(), touches.noted(a!)?.gapSeconds, touches.noted(d!)?.at.getTime()]).toEqual([at + 10, 62, at + 30]);
      open();
      await touches.settled();
      expect(c.transactions()).toBe(2);
      const got = new Map((await rowsOf([a!, b!, d!])).map((r) => [r.id, r.last_seen_at.getTime()]));
      expect([got.get(a!), got.get(b!), got.get(d!)]).toEqual([at + 10, at + 20, at + 30]);
    });

    it('never revives a revoked session; a failed write is reported and later touches still go out', async () => {
      const [live, revoked] = await freshSessions(2);
      await h.t.owner.query("update sessions set revoked_at = now(), revoked_reason = 'test' where id = $1", [revoked]);
      const before = (await rowsOf([revoked!]))[0]!.last_seen_at.getTime();
      const errors: unknown[] = [];
      const touches = createSessionTouches({ db: h.t.db, onError: (err) => errors.push(err) });
      const at = new Date(Date.parse('2031-03-01T00:00:00Z'));
      touches.touch(live!, at, 61);
      touches.touch(revoked!, at, 61);
      await touches.settled();
      const got = new Map((await rowsOf([live!, revoked!])).map((r) => [r.id, r.last_seen_at.getTime()]));
      expect([got.get(live!), got.get(revoked!)]).toEqual([at.getTime(), before]);
      // Not a uuid: the statement fails and is reported; the toucher goes on.
      touches.touch('not-a-uuid', at, 61);
      await touches.settled();
      expect(errors).toHaveLength(1);
      expect(touches.noted('not-a-uuid')).toBeUndefined(); // not written: forgotten, noted again by the next request
      const later = new Date(at.getTime() + 1000);
      touches.touch(live!, later, 62);
      await touches.settled();
      expect(errors).toHaveLength(1);
      expect((await rowsOf([live!]))[0]!.last_seen_at.getTime()).toBe(later.getTime());
    });

    it.runIf(engine === 'postgres')('skips a row another transaction holds instead of waiting for it (no deadlock with a revocation), and writes the rest', async () => {
      const [held, free] = await freshSessions(2);
      const before = (await rowsOf([held!]))[0]!.last_seen_at.getTime();
      const touches = createSessionTouches({ db: h.t.db, onError: failOnError });
      const at = new Date(Date.parse('2031-04-01T00:00:00Z'));
      // As "sign out everywhere" holds a user's session rows until it commits.
      const waited = await h.t.owner.transaction(async (tx) => {
        await tx.query('select 1 from sessions where id = $1 for update', [held]);
        touches.touch(held!, at, 61);
        touches.touch(free!, at, 61);
        const started = Date.now();
        await touches.settled();
        return Date.now() - started;
      });
      expect(waited).toBeLessThan(5000);
      const got = new Map((await rowsOf([held!, free!])).map((r) => [r.id, r.last_seen_at.getTime()]));
      expect([got.get(held!), got.get(free!)]).toEqual([before, at.getTime()]);
      expect([touches.noted(held!), touches.noted(free!)?.at.getTime()]).toEqual([undefined, at.getTime()]);
    });

    it('many requests of one due session at once all succeed, and the row records the activity', async () => {
      const acme = h.orgId('acme');
      const u = await newUser(h, acme, 'member');
      const s = await signedIn(h, u.email);
      h.clock.advance(61_000);
      // More than the pool's connections: a request never holds its connection waiting for the touch.
      const answers = await Promise.all(Array.from({ length: 24 }, () => s.call('GET', `/api/orgs/${acme}/projects`)));
      expect(answers.map((a) => a.statusCode)).toEqual(Array.from({ length: 24 }, () => 200));
      await h.built.services.sessionTouches.settled();
      const r = await h.t.owner.query<{ last_seen_at: Date; longest_idle_seconds: number }>(
        'select last_seen_at, longest_idle_seconds from sessions where user_id = $1 and revoked_at is null', [u.id]);
      expect(r.map((x) => [x.last_seen_at.getTime(), x.longest_idle_seconds])).toEqual([[h.clock.now().getTime(), 61]]);
    });

    it('a password change\u2019s replacement session keeps the gap its request saw, its touch written or not', async () => {
      const acme = h.orgId('acme');
      const u = await newUser(h, acme, 'member');
      const cookie = await h.cookieFor(u.email);
      h.clock.advance(20 * 60_000);
      const { sessions } = h.built.services;
      const ctx = systemContext('test');
      const v = await sessions.verify(cookie.slice(cookie.indexOf('=') + 1), ctx);
      expect(v?.actor.session.longestIdleSeconds).toBe(1200);
      // At once, as the password route does: the touch that recorded the gap may not be written yet.
      const fresh = await h.t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => sessions.rotate(tx, v!.actor.session, u.id, ctx));
      await h.built.services.sessionTouches.settled();
      const r = await h.t.owner.query<{ longest_idle_seconds: number }>('select longest_idle_seconds from sessions where id = $1', [fresh.id]);
      expect(r[0]?.longest_idle_seconds).toBe(1200);
    });

    it('a session signed out while its touch is noted is refused at once, and the touch does not write it', async () => {
      const acme = h.orgId('acme');
      const u = await newUser(h, acme, 'member');
      const s = await signedIn(h, u.email);
      h.clock.advance(61_000);
      expect((await s.call('GET', `/api/orgs/${acme}/projects`)).statusCode).toBe(200); // notes a touch
      expect((await s.call('POST', '/api/auth/logout')).statusCode).toBe(204);
      expect((await s.call('GET', `/api/orgs/${acme}/projects`)).statusCode).toBe(401);
      await h.built.services.sessionTouches.settled();
      const r = await h.t.owner.query<{ n: number }>('select count(*)::int as n from sessions where user_id = $1 and revoked_at is null', [u.id]);
      expect(r[0]?.n).toBe(0);
    });
  });
}
