import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring, type Kek } from '../../src/crypto/index.js';
import type { Database } from '../../src/db/database.js';
import { openDatabase } from '../../src/db/open.js';
import { chainKeysFrom, createAuditWriter } from '../../src/domains/audit/index.js';
import { createSealer } from '../../src/domains/keys/index.js';
import { ManualClock } from '../../src/kernel/clock.js';
import { systemContext } from '../../src/kernel/context.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';
import { runBin } from '../support/bin.js';
import { createTestDatabase, ENGINES, TEST_RUNTIME_ROLE, type TestDatabase } from '../support/db.js';
import { createKek, initToken, readKeyValue, softhsmMissing, startSoftHsm, type SoftHsm } from '../support/softhsm.js';
import { seedSmallOrg } from '../support/tenants.js';

const K1: Kek = { id: 'k1', key: Buffer.alloc(32, 1) };
const K2: Kek = { id: 'k2', key: Buffer.alloc(32, 2) };
const spec = (...keks: Kek[]) => keks.map((k) => `${k.id}:${k.key.toString('base64')}`).join(',');
const ORGS = 5;

/** Orgs with a sealed value each, under K1: what a deployment holds before it adds a KEK. */
async function seed(db: Database): Promise<void> {
  const sealer = createSealer(new Keyring([K1]));
  for (let i = 0; i < ORGS; i++) {
    const { orgId } = await seedSmallOrg(db, `cli-keys-${i}`, 1);
    await db.withTenant({ orgId, projectIds: null }, (tx) => sealer.seal(tx, { scope: orgId, table: 'assets', column: 's', row: 'r' }, `v${i}`));
  }
}

/**
 * `palisade keys status` and `palisade keys rotate-kek`, the real CLI in a child process, on
 * the embedded engine (a data directory) and on PostgreSQL (the owner URL, runtime role apart).
 */
describe.each(ENGINES)('palisade keys on %s', (engine) => {
  let t: TestDatabase | null = null;
  let dataDir = '';
  const stateDir = mkdtempSync(join(tmpdir(), 'palisade-cli-keys-'));
  const env = (keks: string): Record<string, string> => ({
    PALISADE_ENV: 'test',
    PALISADE_KEKS: keks,
    PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
    PALISADE_STATE_DIR: stateDir,
    LOG_LEVEL: 'silent',
    ...(engine === 'postgres'
      ? { DATABASE_URL: t?.ownerUrl ?? '', PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE }
      : { DATABASE_URL: '', PALISADE_DATA_DIR: dataDir, PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE }),
  });

  beforeAll(async () => {
    if (engine === 'postgres') {
      t = await createTestDatabase('postgres');
      await seed(t.db);
    } else {
      dataDir = join(stateDir, 'data');
      const opened = await openDatabase({ kind: 'pglite', dataDir, runtimeRole: TEST_RUNTIME_ROLE }, { migrate: true });
      await seed(opened.db);
      await opened.db.close();
      await opened.owner.close();
    }
  });
  afterAll(async () => {
    await t?.drop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('says what each KEK wraps, refuses a rotation that lacks the old KEK, then rotates with progress and a final count', async () => {
    const before = await runBin(['keys', 'status'], env(spec(K2, K1)));
    expect(before.code, before.err).toBe(0);
    expect(before.out).toContain(`k1: wraps ${ORGS} data keys (${ORGS} org, 0 system)`);
    expect(before.out).toContain('still needed: run `palisade keys rotate-kek` to rewrap its keys and re-sign its chain heads under k2');

    // K1 removed too early: status says it is needed (exit 1), and the rotation refuses, changing nothing.
    const early = await runBin(['keys', 'status'], env(spec(K2)));
    expect(early.code).toBe(1);
    expect(early.out).toContain(`NOT CONFIGURED and needed: ${ORGS} data keys cannot be opened; add k1 back to PALISADE_KEKS`);
    const refused = await runBin(['keys', 'rotate-kek'], env(spec(K2)));
    expect(refused.code).toBe(2);
    expect(refused.err).toBe(`refusing: data keys are wrapped by KEK ids that are not configured: k1 (${ORGS} keys); add them back (after the active KEK) and run again. Nothing was changed.\n`);

    const rotated = await runBin(['keys', 'rotate-kek', '--batch', '2', '--new-kek', 'k2'], env(spec(K2, K1)));
    expect(rotated.code, rotated.err).toBe(0);
    // stderr is a pipe here: plain progress lines, the last one complete.
    expect(rotated.err).toContain(`rewrapping data keys: 0/${ORGS} (0%)\n`);
    expect(rotated.err).toContain(`rewrapping data keys: ${ORGS}/${ORGS} (100%)\n`);
    expect(rotated.out).toMatch(new RegExp(`^rewrapped ${ORGS} data keys \\(${ORGS} orgs, 0 system\\) under k2 in [\\d.]+ s \\(\\d+ keys/s\\); 0 were already under it`));

    // The rotation's own audit events seal their details with the system chain's first data key,
    // created under the active KEK k2: one more key, already where it belongs.
    const again = await runBin(['keys', 'rotate-kek'], env(spec(K2, K1)));
    expect(again.out).toBe(`nothing to rewrap: all ${ORGS + 1} data keys are wrapped by the active KEK k2\n`);
    const after = await runBin(['keys', 'status'], env(spec(K2, K1)));
    expect(after.out).toMatch(/k1: wraps 0 data keys \(0 org, 0 system\)[^\n]*\n {2}(can be removed from PALISADE_KEKS|no data key needs it: it can be removed from PALISADE_KEKS)/);
    expect(after.out).toContain('every data key is wrapped by the active KEK');
    // The rotation's evidence is in the system chain, which verifies.
    const verified = await runBin(['audit', 'verify', '--org', '00000000-0000-0000-0000-000000000000'], env(spec(K2, K1)));
    expect(verified.code, verified.out + verified.err).toBe(0);
  });

  // The usage is the same whatever the engine: asked once.
  it.runIf(engine === ENGINES[0])('answers a wrong subcommand or batch size with the usage', async () => {
    const r = await runBin(['keys', 'rotate'], env(spec(K2, K1)));
    expect(r.code).toBe(2);
    expect(r.err).toContain('keys has these subcommands: status, rotate-kek, create-kek (KEKs); rotate-data-key, rollback-data-key, rotation-status');
    expect((await runBin(['keys', 'rotate-kek', '--batch', '0'], env(spec(K2, K1)))).err).toContain('--batch takes a number of orgs per transaction');
  });
});

const hsmMissing = softhsmMissing();

/** From PALISADE_KEKS into a token: the env KEK imported under its id, a new token KEK active, then rotate. */
describe.skipIf(hsmMissing !== null || !ENGINES.includes('postgres'))('palisade keys with the PKCS#11 provider (SoftHSM2)', () => {
  let t: TestDatabase;
  let hsm: SoftHsm;
  const stateDir = mkdtempSync(join(tmpdir(), 'palisade-cli-hsm-'));
  const env = (over: Record<string, string> = {}): Record<string, string> => ({
    ...hsm.env,
    PALISADE_ENV: 'test',
    PALISADE_KEK_PROVIDER: 'pkcs11',
    PALISADE_PKCS11_TOKEN: 'palisade-cli',
    PALISADE_PKCS11_PIN: '2468',
    PALISADE_PKCS11_KEYS: 'hsm-1,k1',
    PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
    PALISADE_STATE_DIR: stateDir,
    LOG_LEVEL: 'silent',
    DATABASE_URL: t.ownerUrl ?? '',
    PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE,
    ...over,
  });

  beforeAll(async () => {
    hsm = startSoftHsm();
    initToken('palisade-cli', '2468');
    createKek('palisade-cli', '2468', 'hsm-1');
    createKek('palisade-cli', '2468', 'k1', { value: K1.key });
    t = await createTestDatabase('postgres');
    await seed(t.db);
    // An event chained under the env KEK k1, before the move into the token.
    const audit = createAuditWriter({ db: t.db, keys: chainKeysFrom(new Keyring([K1])), sealer: createSealer(new Keyring([K1])), clock: new ManualClock(new Date('2026-01-01T00:00:00Z')), onError: (err) => { throw err; } });
    await t.db.withTenant({ orgId: SYSTEM_ORG_ID, projectIds: null }, (tx) =>
      audit.append(tx, SYSTEM_ORG_ID, systemContext('test'), { action: 'auth.account_unlocked', details: { wasLocked: true } }));
  });
  afterAll(async () => {
    await t?.drop();
    hsm?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('rewraps every key under the token KEK, and the old chains still verify', async () => {
    const rotated = await runBin(['keys', 'rotate-kek', '--new-kek', 'hsm-1'], env());
    expect(rotated.code, rotated.err).toBe(0);
    // The event chained under k1 sealed its details with a system data key wrapped by k1.
    expect(rotated.out).toMatch(new RegExp(`^rewrapped ${ORGS + 1} data keys \\(${ORGS} orgs, 1 system\\) under hsm-1`));
    const rows = await t.owner.query<{ kek_id: string }>('select distinct kek_id from org_keys');
    expect(rows).toEqual([{ kek_id: 'hsm-1' }]);
    // The event chained under the env KEK k1 verifies with its MAC companion in the token, and
    // the rotation's own events (under hsm-1) follow it.
    const keyIds = await t.owner.query<{ key_id: string }>('select key_id from audit_events where org_id = $1 order by seq', [SYSTEM_ORG_ID]);
    expect(keyIds.map((k) => k.key_id)).toEqual(['k1', 'hsm-1', 'hsm-1']);
    const verified = await runBin(['audit', 'verify', '--org', SYSTEM_ORG_ID], env());
    expect(verified.code, verified.out + verified.err).toBe(0);
    expect(verified.out).toContain('3 events');
  });

  it('creates a KEK inside the token (keys create-kek) that the provider then accepts, and refuses a label taken', async () => {
    const created = await runBin(['keys', 'create-kek', 'hsm-2'], env());
    expect(created.code, created.err).toBe(0);
    expect(created.out).toBe('created KEK hsm-2 (and hsm-2.mac) in token "palisade-cli": put hsm-2 first in PALISADE_PKCS11_KEYS, restart, then run `palisade keys rotate-kek`\n');
    expect(readKeyValue('palisade-cli', '2468', 'hsm-2')).toEqual({ code: 'CKR_ATTRIBUTE_SENSITIVE' });
    const again = await runBin(['keys', 'create-kek', 'hsm-2'], env());
    expect(again.code).toBe(2);
    expect(again.err).toBe('PKCS#11 token "palisade-cli" already holds a key labelled "hsm-2": choose another label\n');
    const status = await runBin(['keys', 'status'], env({ PALISADE_PKCS11_KEYS: 'hsm-2,hsm-1,k1' }));
    expect(status.code, status.err).toBe(0);
    expect(status.out).toContain('hsm-2: wraps 0 data keys (0 org, 0 system)\n  active: wraps every new data key');
    expect((await runBin(['keys', 'create-kek', 'bad label'], env())).err).toContain('keys create-kek needs a LABEL');
  });

  it('refuses to start with a wrong PIN, a missing token or a missing key label, naming what is wrong and never the PIN', async () => {
    const pin = await runBin(['keys', 'status'], env({ PALISADE_PKCS11_PIN: '0000-canary' }));
    expect(pin.code).not.toBe(0);
    expect(pin.err).toContain('PALISADE_PKCS11_PIN was refused by token "palisade-cli" (CKR_PIN_INCORRECT)');
    expect(pin.err).not.toContain('canary');
    const token = await runBin(['keys', 'status'], env({ PALISADE_PKCS11_TOKEN: 'elsewhere' }));
    expect(token.err).toContain('PKCS#11 token "elsewhere" (PALISADE_PKCS11_TOKEN) is not in');
    const label = await runBin(['keys', 'status'], env({ PALISADE_PKCS11_KEYS: 'hsm-9,hsm-1' }));
    expect(label.err).toContain('PKCS#11 token "palisade-cli" has no AES key labelled "hsm-9"');
    expect(label.err).not.toMatch(/\n\s+at /);
  });
});
