/**
 * The authentication cache's listener turns the cache on only while a NOTIFY sent by this process
 * is proven to come back (src/db/auth-listener.ts). A LISTEN that succeeded is not proof: through
 * a transaction-mode pooler, or a connection that stalls, notifications never arrive, and a cache
 * that trusted the LISTEN would serve revoked sessions for good. Here the probes are sent to
 * another database than the one listened to, which is what such a path looks like from the
 * process: the LISTEN works, nothing comes back.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuthCache } from '../../src/db/auth-cache.js';
import { startAuthListener } from '../../src/db/auth-listener.js';
import { pgListen } from '../../src/db/listen.js';
import { createTestDatabase, PG_ADMIN_URL, type TestDatabase } from '../support/db.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: () => boolean, ms = 3000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(10)) if (what()) return true;
  return what();
}

describe('authentication cache listener on postgres', () => {
  let t: TestDatabase;
  let here: pg.Pool;
  let elsewhere: pg.Pool;

  beforeAll(async () => {
    t = await createTestDatabase('postgres');
    here = new pg.Pool({ connectionString: t.ownerUrl ?? '', max: 2 });
    elsewhere = new pg.Pool({ connectionString: PG_ADMIN_URL, max: 2 });
  });
  afterAll(async () => {
    await here?.end();
    await elsewhere?.end();
    await t?.drop();
  });

  const notifyVia = (pool: () => pg.Pool) => async (payload: string) => {
    await pool().query(`select pg_notify('palisade_auth', $1)`, [payload]);
  };

  it('turns the cache on once its own probe comes back, and hears changes', async () => {
    const cache = new AuthCache();
    const stop = await startAuthListener({ cache, listen: pgListen(t.ownerUrl ?? ''), notify: notifyVia(() => here), probeEveryMs: 200, probeTimeoutMs: 500 });
    try {
      expect(await until(() => cache.stats().live)).toBe(true);
      cache.put('k', { n: 1 }, ['s:1'], cache.ticket());
      await here.query(`select pg_notify('palisade_auth', 's:1')`);
      expect(await until(() => cache.get('k') === undefined)).toBe(true);
    } finally {
      await stop();
    }
    expect(cache.stats().live).toBe(false);
  });

  it('never turns on when its probes do not come back (a LISTEN that hears nothing)', async () => {
    const cache = new AuthCache();
    const stop = await startAuthListener({ cache, listen: pgListen(t.ownerUrl ?? ''), notify: notifyVia(() => elsewhere), probeEveryMs: 100, probeTimeoutMs: 200 });
    try {
      expect(await until(() => cache.stats().live, 1000)).toBe(false);
    } finally {
      await stop();
    }
  });

  it('turns off, empty, when a probe stops coming back, and on again when one does', async () => {
    const cache = new AuthCache();
    let via = here;
    const stop = await startAuthListener({ cache, listen: pgListen(t.ownerUrl ?? ''), notify: notifyVia(() => via), probeEveryMs: 100, probeTimeoutMs: 300 });
    try {
      expect(await until(() => cache.stats().live)).toBe(true);
      cache.put('k', { n: 1 }, ['s:1'], cache.ticket());
      via = elsewhere;
      expect(await until(() => !cache.stats().live)).toBe(true);
      expect(cache.stats().size).toBe(0);
      via = here;
      expect(await until(() => cache.stats().live)).toBe(true);
    } finally {
      await stop();
    }
  });

  // Under load the probe waits for a pool connection behind the requests: timing it from when it
  // was asked turned the cache off when it was needed most (bench, issue 15).
  it('stays on while probes are slow to commit (a busy pool) but come back once committed', async () => {
    const cache = new AuthCache();
    const slowly = async (payload: string) => {
      await sleep(400);
      await here.query(`select pg_notify('palisade_auth', $1)`, [payload]);
    };
    const stop = await startAuthListener({ cache, listen: pgListen(t.ownerUrl ?? ''), notify: slowly, probeEveryMs: 50, probeTimeoutMs: 200 });
    try {
      expect(await until(() => cache.stats().live)).toBe(true);
      let off = false;
      for (const end = Date.now() + 1500; Date.now() < end; await sleep(5)) off ||= !cache.stats().live;
      expect(off).toBe(false);
    } finally {
      await stop();
    }
  });

  it('ignores another instance\u2019s probes', async () => {
    const cache = new AuthCache();
    const stop = await startAuthListener({ cache, listen: pgListen(t.ownerUrl ?? ''), notify: notifyVia(() => elsewhere), probeEveryMs: 100, probeTimeoutMs: 200 });
    try {
      await sleep(100);
      await here.query(`select pg_notify('palisade_auth', 'probe:0123456789abcdef')`);
      expect(await until(() => cache.stats().live, 500)).toBe(false);
    } finally {
      await stop();
    }
  });
});
