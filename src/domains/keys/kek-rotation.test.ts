import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring, type FieldRef, type Kek } from '../../crypto/index.js';
import type { Tx } from '../../db/database.js';
import { pgOwner } from '../../db/open.js';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../../test/support/db.js';
import { seedSmallOrg } from '../../../test/support/tenants.js';
import { createSealer, kekUsage, renderStatus, rotateKek, RotationRefused, type RotationProgress } from './index.js';

const K1: Kek = { id: 'k1', key: Buffer.alloc(32, 1) };
const K2: Kek = { id: 'k2', key: Buffer.alloc(32, 2) };
const ORGS = 7;

interface KeyRow {
  scope: string;
  id: string;
  kek_id: string;
  wrapped: string;
}

describe.each(ENGINES)('palisade keys rotate-kek and keys status on %s', (engine) => {
  let t: TestDatabase;
  const orgs: string[] = [];
  const sealed = new Map<string, string>();
  const ref = (org: string): FieldRef => ({ scope: org, table: 'assets', column: 'secret', row: 'r1' });
  const inOrg = <T>(org: string, fn: (tx: Tx) => Promise<T>) => t.db.withTenant({ orgId: org, projectIds: null }, fn);
  const allKeys = () => t.owner.query<KeyRow>(
    `select org_id::text as scope, id::text, kek_id, wrapped from org_keys
     union all select scope, id::text, kek_id, wrapped from system_keys order by 1, 2`);

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    const old = createSealer(new Keyring([K1]));
    for (let i = 0; i < ORGS; i++) {
      const { orgId } = await seedSmallOrg(t.db, `org-${i}`, 1);
      orgs.push(orgId);
      sealed.set(orgId, await inOrg(orgId, (tx) => old.seal(tx, ref(orgId), `secret of org ${i}`)));
    }
    // A system scope (the mail outbox's key) rotates too.
    await t.db.withSystem('test', (tx) => old.seal(tx, { scope: 'mail', table: 'mail_outbox', column: 'body', row: 'm1' }, 'mail body'));
  });
  afterAll(async () => t?.drop());

  it('refuses to start, changing nothing, while a stored key needs a KEK that is not configured', async () => {
    const before = await allKeys();
    const err = await rotateKek({ owner: t.owner, keyring: new Keyring([K2]) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RotationRefused);
    expect((err as Error).message).toBe(`data keys are wrapped by KEK ids that are not configured: k1 (${ORGS + 1} keys); add them back (after the active KEK) and run again. Nothing was changed.`);
    expect(await allKeys()).toEqual(before);
  });

  it('refuses to start, changing nothing, when the KEK configured under an id does not open its keys', async () => {
    const before = await allKeys();
    const wrongK1: Kek = { id: 'k1', key: Buffer.alloc(32, 9) };
    let recorded = 0;
    const err = await rotateKek({ owner: t.owner, keyring: new Keyring([K2, wrongK1]), record: async () => void recorded++ }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RotationRefused);
    expect((err as Error).message).toMatch(/^KEK k1 does not open it: data key [0-9a-f-]{36} of org [0-9a-f-]{36} fails to unwrap, .* Nothing was changed\.$/);
    expect((err as Error).message).not.toContain(K1.key.toString('base64'));
    expect(await allKeys()).toEqual(before);
    expect(recorded).toBe(0);
  });

  it('says which KEKs wrap what, and that the old one is still needed', async () => {
    const usage = await kekUsage(t.owner, ['k2', 'k1']);
    expect(usage.map((u) => [u.kekId, u.active, u.configured, u.orgKeys, u.systemKeys])).toEqual([
      ['k2', true, true, 0, 0],
      ['k1', false, true, ORGS, 1],
    ]);
    const status = renderStatus(usage, 'PALISADE_KEKS');
    expect(status.code).toBe(0);
    expect(status.out).toContain(`k1: wraps ${ORGS + 1} data keys (${ORGS} org, 1 system)\n  still needed: run \`palisade keys rotate-kek\` to rewrap its keys and re-sign its chain heads under k2`);
    expect(status.out).toContain(`${ORGS + 1} data keys and chain heads still under an older KEK: run \`palisade keys rotate-kek\``);
    // Without k1 configured: a wrapped key needs a KEK that is missing (exit 1).
    const missing = renderStatus(await kekUsage(t.owner, ['k2']), 'PALISADE_KEKS');
    expect(missing.code).toBe(1);
    expect(missing.out).toContain('k1: wraps 8 data keys (7 org, 1 system)\n  NOT CONFIGURED and needed: 8 data keys cannot be opened; add k1 back to PALISADE_KEKS (after the active KEK)');
  });

  it('rewraps in batches, resumes after a stop midway, skips what is done, and every value still opens under the new KEK alone', async () => {
    const keyring = new Keyring([K2, K1]);
    const seen: RotationProgress[] = [];
    // Stopped after the second batch of two orgs: what committed stays committed.
    const stop = new Error('operator pressed ^C');
    const first = await rotateKek({
      owner: t.owner, keyring, batchOrgs: 2, newKek: 'k2',
      onProgress: (p) => {
        seen.push(p);
        if (p.done >= 4) throw stop;
      },
    }).catch((e: unknown) => e);
    expect(first).toBe(stop);
    expect(seen).toEqual([{ done: 0, total: ORGS + 1 }, { done: 2, total: ORGS + 1 }, { done: 4, total: ORGS + 1 }]);
    const midway = await allKeys();
    expect(midway.filter((k) => k.kek_id === 'k2')).toHaveLength(4);

    const events: [string, Record<string, string | number>][] = [];
    const second = await rotateKek({ owner: t.owner, keyring: new Keyring([K2, K1]), batchOrgs: 2, record: async (e, d) => void events.push([e, d]) });
    expect(second).toMatchObject({ kekId: 'k2', rewrapped: ORGS - 4 + 1, orgs: ORGS - 4, systemKeys: 1, alreadyActive: 4 });
    expect(events).toEqual([
      ['started', { kekId: 'k2', pending: ORGS - 4 + 1 }],
      ['finished', { kekId: 'k2', rewrapped: ORGS - 4 + 1, orgs: ORGS - 4, systemKeys: 1, headsResigned: 0 }],
    ]);
    const after = await allKeys();
    expect(after.every((k) => k.kek_id === 'k2')).toBe(true);
    // The keys kept their ids (sealed values name them); the four rewrapped first were not rewrapped again.
    expect(after.map((k) => k.id)).toEqual(midway.map((k) => k.id));
    for (const k of midway.filter((m) => m.kek_id === 'k2')) expect(after.find((a) => a.id === k.id)?.wrapped).toBe(k.wrapped);

    // K1 is gone: a cold keyring holding only K2 opens every value.
    const fresh = createSealer(new Keyring([K2]));
    for (const org of orgs) expect(await inOrg(org, (tx) => fresh.open(tx, ref(org), sealed.get(org) as string))).toMatch(/^secret of org \d$/);

    const third = await rotateKek({ owner: t.owner, keyring: new Keyring([K2, K1]) });
    expect(third).toMatchObject({ rewrapped: 0, orgs: 0, alreadyActive: ORGS + 1 });
    const status = renderStatus(await kekUsage(t.owner, ['k2', 'k1']), 'PALISADE_KEKS');
    expect(status.out).toContain('k1: wraps 0 data keys (0 org, 0 system)\n  can be removed from PALISADE_KEKS: nothing needs it');
    expect(status.out).toContain('every data key is wrapped by the active KEK');
  });

  it.runIf(engine === 'postgres')('refuses to run over an owner connection that cannot see every org (no superuser, no BYPASSRLS)', async () => {
    const role = `palisade_nobypass_${Math.random().toString(36).slice(2, 8)}`;
    await t.owner.query(`create role ${role} login`);
    const url = new URL(t.ownerUrl ?? '');
    url.username = role;
    const weak = pgOwner(url.toString());
    try {
      const err = await rotateKek({ owner: weak, keyring: new Keyring([K2, K1]) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RotationRefused);
      expect((err as Error).message).toMatch(/owner connection \(DATABASE_URL\), whose role must be superuser or have BYPASSRLS/);
    } finally {
      await weak.close();
      await t.owner.query(`drop role ${role}`);
    }
  });

  it('refuses a resumed run whose active KEK is not the one the first part was wrapped with', async () => {
    const before = await allKeys();
    const wrongK2: Kek = { id: 'k2', key: Buffer.alloc(32, 8) };
    const err = await rotateKek({ owner: t.owner, keyring: new Keyring([wrongK2, K1]) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RotationRefused);
    expect((err as Error).message).toMatch(/^KEK k2 does not open it/);
    expect(await allKeys()).toEqual(before);
  });
});
