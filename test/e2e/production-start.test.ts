/**
 * Starting in production where development ran (new-user trial): the start-up check refuses a
 * database whose data keys name a KEK the keyring lacks (every environment) or that holds the
 * demo accounts (production), and production never reads or prints demo logins.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { Keyring } from '../../src/crypto/index.js';
import { openDatabase } from '../../src/db/open.js';
import type { DemoData } from '../../src/demo.js';
import { createSealer } from '../../src/domains/keys/index.js';
import { serve } from '../../src/main.js';
import { startupCheck } from '../../src/startup.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { ENGINES, TEST_RUNTIME_ROLE } from '../support/db.js';
import { freePort } from '../support/redis.js';

const K1 = `k1:${Buffer.alloc(32, 7).toString('base64')}`;
const SESSION_SECRET = Buffer.alloc(32, 9).toString('base64');

/** Runs serve() with stdout captured (the banner); returns what it wrote and its stop function. */
async function serveCapturing(env: Record<string, string>): Promise<{ out: string; stop: (() => Promise<void>) | null; error: Error | null }> {
  const config = loadConfig({ HOST: '127.0.0.1', PORT: String(await freePort()), LOG_LEVEL: 'silent', ...env });
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = (chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  };
  let stop: (() => Promise<void>) | null = null;
  let error: Error | null = null;
  try {
    stop = await serve(config);
  } catch (err) {
    error = err as Error;
  } finally {
    process.stdout.write = write;
  }
  return { out, stop, error };
}

describe('a production start on the development data directory (new-user trial)', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'palisade-prod-start-'));
  let demo: DemoData;
  let devKek: string;
  const production = { PALISADE_ENV: 'production', PUBLIC_ORIGIN: 'https://palisade.example', PALISADE_SESSION_SECRET: SESSION_SECRET, PALISADE_STATE_DIR: stateDir };

  beforeAll(async () => {
    // What `npm start` did in development: generated keys (KEK id "dev"), the demo seed.
    const dev = await serveCapturing({ PALISADE_ENV: 'development', PALISADE_STATE_DIR: stateDir });
    expect(dev.error).toBeNull();
    await dev.stop?.();
    demo = JSON.parse(readFileSync(join(stateDir, 'demo-logins.json'), 'utf8')) as DemoData;
    devKek = (JSON.parse(readFileSync(join(stateDir, 'dev-secrets.json'), 'utf8')) as { kek: string }).kek;
    // Sealed data under the dev KEK: an org's data key (MFA secrets live under one) and a system one.
    const config = loadConfig({ PALISADE_ENV: 'development', PALISADE_STATE_DIR: stateDir });
    const { db, owner } = await openDatabase(config.database, { migrate: false });
    const sealer = createSealer(new Keyring([...config.keks]));
    const orgId = demo.orgs[0]?.id as string;
    await db.withTenant({ orgId, projectIds: null }, (tx) => sealer.seal(tx, { scope: orgId, table: 't', column: 'c', row: 'r' }, 'secret'));
    await db.withSystem('test', (tx) => sealer.seal(tx, { scope: 'test-scope', table: 't', column: 'c', row: 'r' }, 'secret'));
    await owner.close();
    await db.close();
  }, 120_000);
  afterAll(() => rmSync(stateDir, { recursive: true, force: true }));

  // new-user trial
  // In full: production refuses to start, naming the missing KEK id and saying the demo accounts
  // are checked once the keys open (their addresses are sealed under them), and prints no demo login
  it('production refuses to start, naming the missing KEK id and the demo accounts check it waits for', async () => {
    const r = await serveCapturing({ ...production, PALISADE_KEKS: K1 });
    await r.stop?.();
    expect(r.error?.message).toMatch(/^refusing to start:/);
    expect(r.error?.message).toContain('wrapped by KEK ids that PALISADE_KEKS lacks: dev (');
    expect(r.error?.message).toContain('holds the demo accounts whose passwords development printed is checked once those KEKs are given');
    expect(r.error?.message).toContain('fresh PALISADE_DATA_DIR or database');
    // Ids only: never a key.
    expect(r.error?.message).not.toContain(devKek);
    for (const l of demo.logins) {
      expect(r.out).not.toContain(l.email);
      expect(r.out).not.toContain(l.password);
    }
  }, 60_000);

  // new-user trial
  it('outside production too, a keyring without the KEK that wrapped the data keys refuses the start', async () => {
    const r = await serveCapturing({ PALISADE_ENV: 'test', PALISADE_STATE_DIR: stateDir, PALISADE_KEKS: K1, PALISADE_SESSION_SECRET: SESSION_SECRET });
    await r.stop?.();
    expect(r.error?.message).toContain('wrapped by KEK ids that PALISADE_KEKS lacks: dev (');
    expect(r.error?.message).not.toContain('demo accounts');
  }, 60_000);

  // new-user trial
  it('production with the old KEK kept still refuses the demo accounts, and prints no demo login', async () => {
    const r = await serveCapturing({ ...production, PALISADE_KEKS: `${K1},dev:${devKek}` });
    await r.stop?.();
    expect(r.error?.message).toContain('demo accounts');
    expect(r.error?.message).not.toContain('PALISADE_KEKS lacks');
    expect(r.out).not.toContain('Demo logins');
  }, 60_000);

  // new-user trial
  it('development with the old KEK kept starts (a rotation keeps the old KEK after the active one)', async () => {
    const r = await serveCapturing({ PALISADE_ENV: 'development', PALISADE_STATE_DIR: stateDir, PALISADE_KEKS: `${K1},dev:${devKek}`, PALISADE_SESSION_SECRET: SESSION_SECRET });
    await r.stop?.();
    expect(r.error).toBeNull();
  }, 60_000);

  // new-user trial
  it('production on a fresh data directory starts and neither reads nor prints the demo logins file', async () => {
    const fresh = join(stateDir, 'fresh');
    writeFileSync(`${fresh}.demo-logins.json`, JSON.stringify(demo));
    const r = await serveCapturing({ ...production, PALISADE_KEKS: K1, PALISADE_DATA_DIR: fresh });
    await r.stop?.();
    expect(r.error).toBeNull();
    expect(r.out).toContain('listening on');
    expect(r.out).not.toContain('Demo logins');
    for (const l of demo.logins) expect(r.out).not.toContain(l.password);
  }, 60_000);
});

describe.each(ENGINES)('the start-up check on %s (serve and worker)', (engine) => {
  let h: TestApp;
  const k1 = { id: 'k1', key: Buffer.alloc(32, 7) };
  beforeAll(async () => {
    // The demo seed, and an org data key wrapped by k1 (the test keyring's KEK).
    h = await createTestApp(engine);
    const orgId = h.orgId('acme');
    const sealer = createSealer(new Keyring([k1]));
    await h.t.db.withTenant({ orgId, projectIds: null }, (tx) => sealer.seal(tx, { scope: orgId, table: 't', column: 'c', row: 'r' }, 'secret'));
  }, 120_000);
  afterAll(async () => h?.close());

  // new-user trial
  // In full: names the KEK ids the keyring lacks (every org, read over the owner connection), and
  // passes when it holds them
  it('names the KEK ids the keyring lacks, and passes when it holds them', async () => {
    const k2 = { id: 'k2', key: Buffer.alloc(32, 3) };
    const refused = await startupCheck(h.t.db, h.t.owner, { env: 'test', keks: [k2] });
    // The data keys, and the chain heads signed under it (each org's next event checks its head).
    expect(refused.problems).toEqual([
      expect.stringMatching(/PALISADE_KEKS lacks: k1 \(\d+ keys?\);/),
      expect.stringMatching(/audit chain heads in this database are signed under KEK ids that PALISADE_KEKS lacks: k1 \(\d+ heads?\);/),
    ]);
    expect(refused.warnings).toEqual([]);
    const rotated = await startupCheck(h.t.db, h.t.owner, { env: 'test', keks: [k2, k1] });
    expect(rotated.problems).toEqual([]);
  });

  // new-user trial
  // (PostgreSQL only: PGlite is one connection, which the owner transaction holds.)
  if (engine === 'postgres') {
    // In full: with an owner that does not bypass RLS, does not pass org keys silently: it warns
    // that they were not checked
    it('warns that org keys were not checked when the owner does not bypass RLS', async () => {
      const k2 = { id: 'k2', key: Buffer.alloc(32, 3) };
      const check = await h.t.owner.transaction(async (tx) => {
        await tx.query(`set local role ${TEST_RUNTIME_ROLE}`);
        return startupCheck(h.t.db, tx, { env: 'test', keks: [k2] });
      });
      expect(check.warnings).toEqual([expect.stringContaining('org data keys (org_keys) and audit chain heads were not checked')]);
    });
  }

  // new-user trial
  it('in production, refuses a database holding the demo accounts', async () => {
    const check = await startupCheck(h.t.db, h.t.owner, { env: 'production', keks: [k1] });
    expect(check.problems).toEqual([expect.stringContaining('demo accounts (@acme.test, @globex.test)')]);
  });
});
