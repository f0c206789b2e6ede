import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring, type Kek } from '../../crypto/index.js';
import { ManualClock } from '../../kernel/clock.js';
import { systemContext } from '../../kernel/context.js';
import { createTestDatabase, ENGINES, type TestDatabase } from '../../../test/support/db.js';
import { seedSmallOrg } from '../../../test/support/tenants.js';
import { chainKeysFrom, createAuditWriter } from '../audit/index.js';
import { createSealer, kekUsage, renderStatus, rotateKek, RotationRefused } from './index.js';

const K1: Kek = { id: 'k1', key: Buffer.alloc(32, 1) };
const K2: Kek = { id: 'k2', key: Buffer.alloc(32, 2) };
const K3: Kek = { id: 'k3', key: Buffer.alloc(32, 3) };

/**
 * Review of issue 14, P1: rotate-kek rewrapped data keys but left each org's audit chain head
 * signed under the old KEK, status called that KEK removable, and once it was removed every
 * audited change of an org not written since failed (its head could not be checked).
 */
describe.each(ENGINES)('KEK rotation re-signs audit chain heads on %s', (engine) => {
  let t: TestDatabase;
  const orgs: string[] = [];
  const writerUnder = (keks: Kek[]) =>
    createAuditWriter({ db: t.db, keys: chainKeysFrom(new Keyring(keks)), sealer: createSealer(new Keyring(keks)), clock: new ManualClock(new Date()), onError: (err) => { throw err; } });
  const append = (keks: Kek[], org: string) =>
    t.db.withTenant({ orgId: org, projectIds: null }, (tx) => writerUnder(keks).append(tx, org, systemContext('test'), { action: 'org.updated', details: { name: 'x' } }));
  const heads = () => t.owner.query<{ org_id: string; key_id: string; mac: string; seq: string }>('select org_id::text, key_id, mac, seq::text from audit_heads order by org_id');

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    for (const slug of ['heads-a', 'heads-b']) {
      const { orgId } = await seedSmallOrg(t.db, slug, 0);
      orgs.push(orgId);
      await append([K1], orgId);
    }
    const [a] = orgs as [string];
    await t.db.withTenant({ orgId: a, projectIds: null }, (tx) => createSealer(new Keyring([K1])).seal(tx, { scope: a, table: 'assets', column: 'secret', row: 'r1' }, 'v'));
  });
  afterAll(async () => t?.drop());

  it('counts a KEK that signs chain heads as still needed, even when it wraps no data key', async () => {
    const status = renderStatus(await kekUsage(t.owner, ['k2', 'k1']), 'PALISADE_KEKS');
    expect(status.out).toContain('still needed: run `palisade keys rotate-kek` to rewrap its keys and re-sign its chain heads under k2');
    // Without k1: the heads cannot be checked, so status fails (as the start does).
    const missing = renderStatus(await kekUsage(t.owner, ['k2']), 'PALISADE_KEKS');
    expect(missing.code).toBe(1);
    expect(missing.out).toContain('2 chain heads cannot be checked');
  });

  it('refuses, changing nothing, when a head does not verify under its own KEK (never launders a forged head)', async () => {
    const [, b] = orgs as [string, string];
    const before = await heads();
    await t.owner.query(`select set_config('palisade.org_id', $1, false)`, [b]);
    await t.owner.query(`update audit_heads set mac = $1 where org_id = $2::uuid`, ['0'.repeat(64), b]);
    const err = await rotateKek({ owner: t.owner, keyring: new Keyring([K2, K1]) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RotationRefused);
    expect((err as Error).message).toContain(`the audit chain head of org ${b} does not verify`);
    expect((await heads()).map((h) => h.key_id)).toEqual(['k1', 'k1']);
    const original = before.find((h) => h.org_id === b)?.mac ?? '';
    await t.owner.query(`update audit_heads set mac = $1 where org_id = $2::uuid`, [original, b]);
    await t.owner.query(`select set_config('palisade.org_id', '', false)`);
  });

  it('refuses a first rotation under a KEK nothing shows the servers hold, unless the operator says it is new', async () => {
    const before = await heads();
    const err = await rotateKek({ owner: t.owner, keyring: new Keyring([K2, K1]) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RotationRefused);
    expect((err as Error).message).toContain('nothing in the database is under the active KEK k2 yet');
    expect((err as Error).message).toContain('pass --new-kek k2');
    expect(await heads()).toEqual(before);
  });

  it('re-signs every head under the new KEK, after which the old one can go and every org still writes', async () => {
    const result = await rotateKek({ owner: t.owner, keyring: new Keyring([K2, K1]), newKek: 'k2' });
    // Both orgs hold a data key: their audit events are sealed with it.
    expect(result).toMatchObject({ rewrapped: 2, heads: 2, headsResigned: 2 });
    expect((await heads()).map((h) => h.key_id)).toEqual(['k2', 'k2']);
    const status = renderStatus(await kekUsage(t.owner, ['k2', 'k1']), 'PALISADE_KEKS');
    expect(status.out).toContain('no data key or chain head needs it: it can be removed from PALISADE_KEKS');
    // k1 gone: both orgs' next audited change goes through (the writer checks the head first).
    for (const org of orgs) await append([K2], org);
    expect((await heads()).map((h) => [h.key_id, h.seq])).toEqual([['k2', '2'], ['k2', '2']]);
    // A KEK configured here under the servers' id but with other bytes: their heads do not verify.
    const impostor: Kek = { id: 'k2', key: Buffer.alloc(32, 7) };
    const wrong = await rotateKek({ owner: t.owner, keyring: new Keyring([impostor, K1]) }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(RotationRefused);
    // The data key under k2 is checked first; either way nothing changes under a key the servers lack.
    expect((wrong as Error).message).toMatch(/KEK k2 (does not open it|configured here as k2 is not the one the servers sign with)/);
    // The next KEK, declared new: heads move again.
    const again = await rotateKek({ owner: t.owner, keyring: new Keyring([K3, K2]), newKek: 'k3' });
    expect(again).toMatchObject({ heads: 2, headsResigned: 2 });
  });
});
