/**
 * The authentication cache across two instances whose clocks disagree (second attacker review of
 * migration 042). Session touches announce nothing; a cached row is used only while the gap from
 * its own last_seen_at is below a touch interval. An instance running ahead writes last_seen_at
 * in the other's future, which would make the other's cached row look fresh for as long as the
 * skew, while the gap the first one records (an org's idle limit passed) stays unseen. A row from
 * the future is read again instead.
 */
import pg from 'pg';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import type { Database } from '../../src/db/database.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { secondInstance } from '../support/instances.js';

const SKEW_MS = 120_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('authentication cache on postgres, two instances, one clock two minutes behind', () => {
  let h: TestApp;
  let b: { app: FastifyInstance; db: Database; close(): Promise<void> };
  let foreign: pg.Client;
  let globex: string;
  let url: string;

  beforeAll(async () => {
    h = await createTestApp('postgres');
    // B's clock runs two minutes behind A's (h.clock), and moves with it.
    const second = await secondInstance(h, { clock: { now: () => new Date(h.clock.now().getTime() - SKEW_MS) } });
    b = { app: second.built.app, db: second.db, close: second.close };
    foreign = new pg.Client({ connectionString: h.t.ownerUrl ?? '' });
    await foreign.connect();
    globex = h.orgId('globex');
    url = `/api/orgs/${globex}/projects/${h.demo.orgs.find((o) => o.slug === 'globex')?.projects[0]?.id as string}/assets`;
    await foreign.query(`insert into org_settings (org_id, session_idle_seconds) values ($1, 60)
                         on conflict (org_id) do update set session_idle_seconds = excluded.session_idle_seconds`, [globex]);
  });
  afterAll(async () => {
    await foreign?.end();
    await b?.close();
    await h?.close();
  });

  const get = (app: FastifyInstance, path: string, cookie: string) => app.inject({ method: 'GET', url: path, headers: { origin: ORIGIN, cookie } });

  it('does not serve a row whose last_seen_at lies in its future past a gap the instance ahead recorded', async () => {
    const email = `skew-${newId().slice(0, 8)}@example.test`;
    const id = await h.insertUser({ email, verified: true });
    await foreign.query('insert into memberships (org_id, user_id, role) values ($1, $2, $3)', [globex, id, 'member']);
    // Signed in on A: last_seen_at is A's now, two minutes in B's future.
    const cookie = await h.cookieFor(email);
    // B reads the row (its listener in place, so the row is kept: a read across an announcement
    // is not), and keeps it; served from its cache, it would look fresh for two minutes.
    expect((await get(b.app, url, cookie)).statusCode).toBe(200);
    for (let i = 0; i < 200 && !b.db.authCacheStats()?.live; i++) await sleep(10);
    await sleep(100);
    expect((await get(b.app, url, cookie)).statusCode).toBe(200);
    expect(b.db.authCacheStats()?.size).toBeGreaterThan(0);
    // 61 s idle in A's frame: past globex's minute. A records the gap and refuses.
    h.clock.advance(61_000);
    expect((await get(h.built.app, '/api/me', cookie)).statusCode).toBe(200);
    await h.built.services.sessionTouches.settled();
    const r = await foreign.query<{ g: number }>('select longest_idle_seconds as g from sessions where user_id = $1', [id]);
    expect(r.rows[0]?.g).toBeGreaterThanOrEqual(61);
    expect((await get(h.built.app, url, cookie)).statusCode).toBe(401);
    // B must not serve its cached row (longest idle 0, last seen "in the future"): it reads again.
    expect((await get(b.app, url, cookie)).json()).toMatchObject({ status: 401, code: 'session_expired' });
  });
});
