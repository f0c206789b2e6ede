/**
 * Issue 14 with a real process: `palisade worker` re-encrypts an org's sealed values after a
 * rotation and is SIGKILLed mid-rotation (its open batch transaction dies with its connection).
 * Every value still opens; a worker that takes over resumes from the cursor and ends with every
 * value under the new key, each opening to its original plaintext (nothing sealed twice).
 * PostgreSQL only: an in-memory PGlite database cannot be shared with another process.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring, newId } from '../../src/crypto/index.js';
import { exec } from '../../src/db/database.js';
import { createDataKeyJob, createSealer, SWEEP_AFTER_MS } from '../../src/domains/keys/index.js';
import { LEASE_SECONDS } from '../../src/domains/keys/rotation-job.js';
import { systemContext } from '../../src/kernel/context.js';
import { createTestApp, TEST_KEK, type TestApp } from '../support/app.js';
import { BIN } from '../support/bin.js';
import { ENGINES, TEST_RUNTIME_ROLE } from '../support/db.js';

const VALUES = 40_000;

describe.runIf(ENGINES.includes('postgres'))('a data-key worker killed mid-rotation (PostgreSQL, a real process)', () => {
  let h: TestApp;
  let org: string;

  beforeAll(async () => {
    h = await createTestApp('postgres');
    org = h.orgId('acme');
    for (let done = 0; done < VALUES; done += 5000) {
      await h.t.db.withTenant({ orgId: org }, async (tx) => {
        const list: { id: string; s: string }[] = [];
        for (let i = 0; i < 5000; i++) {
          const id = newId();
          list.push({ id, s: await h.built.services.sealer.seal(tx, { scope: org, table: 'inbound_sources', column: 'secret_sealed', row: id }, `plain-${id}`) });
        }
        await exec(tx, sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
                           select ${org}, v.id, 'standard', 'k', v.s, ${newId()}, now() from jsonb_to_recordset(${JSON.stringify(list)}::jsonb) as v(id uuid, s text)`);
      });
    }
  }, 300_000);
  afterAll(async () => h?.close());

  /** Every value opened by a process that never saw the org; the key id of each. */
  async function check(): Promise<Map<string, number>> {
    const fresh = createSealer(new Keyring([TEST_KEK]));
    const byKey = new Map<string, number>();
    const all = await h.t.owner.query<{ id: string; secret_sealed: string }>('select id, secret_sealed from inbound_sources where org_id = $1', [org]);
    expect(all).toHaveLength(VALUES);
    await h.t.db.withTenant({ orgId: org }, async (tx) => {
      for (const r of all) {
        expect(await fresh.open(tx, { scope: org, table: 'inbound_sources', column: 'secret_sealed', row: r.id }, r.secret_sealed)).toBe(`plain-${r.id}`);
        const k = r.secret_sealed.split('.')[1] ?? '';
        byKey.set(k, (byKey.get(k) ?? 0) + 1);
      }
    });
    return byKey;
  }

  it('loses no value and seals none twice; the next worker finishes the rotation', async () => {
    const rotated = await h.built.services.dataKeys.rotate(systemContext('test'), org);
    const target = rotated.activeKey?.id ?? '';
    // The seeded values and the org's sealed audit events.
    expect(rotated.rotation?.total).toBeGreaterThanOrEqual(VALUES);

    const child = spawn(process.execPath, [BIN, 'worker'], {
      env: {
        ...process.env, PALISADE_ENV: 'test', PALISADE_KEKS: `k1:${TEST_KEK.key.toString('base64')}`,
        PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'), PALISADE_STATE_DIR: mkdtempSync(join(tmpdir(), 'palisade-dk-')),
        DATABASE_URL: h.t.ownerUrl ?? '', PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE, LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    // Killed as soon as some batches have committed and before the pass is over.
    const progress = async () => Number((await h.t.owner.query<{ done: string }>(`select done from org_key_rotations where org_id = $1 and status = 'running'`, [org]))[0]?.done ?? 0);
    const deadline = Date.now() + 60_000;
    let seen = await progress();
    while (seen < 1000 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      seen = await progress();
    }
    child.kill('SIGKILL');
    expect(await exited, output).toBe('SIGKILL');
    expect(seen, output).toBeGreaterThan(0);

    const mid = await h.built.services.dataKeys.state(org);
    expect(mid.rotation?.status).toBe('running');
    const done = mid.rotation?.done ?? 0;
    expect(done).toBeLessThan(VALUES);
    // Exactly the committed batches moved: the batch open at the kill left nothing behind.
    const midKeys = await check();
    expect(midKeys.get(target) ?? 0).toBe(done);

    // The dead worker's lease on the org runs out; another worker resumes from the cursor.
    h.clock.advance((LEASE_SECONDS + 1) * 1000 + Math.max(0, Date.now() - h.clock.now().getTime()));
    const job = createDataKeyJob({ db: h.t.db, clock: h.clock, logger: h.logger, keys: h.built.services.dataKeys });
    await job.drain();
    h.clock.advance(SWEEP_AFTER_MS);
    await job.drain();
    const end = await h.built.services.dataKeys.state(org);
    // Every value counted once: the seeds, the sealed audit events, and the rotation's own event the sweep caught.
    expect(end.rotation).toMatchObject({ status: 'done' });
    expect(end.rotation?.done).toBe(end.rotation?.total);
    expect(end.rotation?.total).toBeGreaterThanOrEqual(rotated.rotation?.total ?? Infinity);
    expect([...(await check())]).toEqual([[target, VALUES]]);
  }, 180_000); // 20 s alone; a real process and 40,000 values opened twice, beside other files on 2 cores
});
