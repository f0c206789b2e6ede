import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import { exec } from '../../src/db/database.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { cliEnv, runBin } from '../support/bin.js';
import { ENGINES } from '../support/db.js';

/** `palisade keys rotate-data-key | rollback-data-key | rotation-status` (PostgreSQL: the real CLI in a child process). */
describe.runIf(ENGINES.includes('postgres'))('palisade keys: data-key rotation', () => {
  let h: TestApp;
  const env = () => cliEnv(h.t.ownerUrl);

  beforeAll(async () => {
    h = await createTestApp('postgres');
    const org = h.orgId('acme');
    await h.t.db.withTenant({ orgId: org }, async (tx) => {
      for (let i = 0; i < 12; i++) {
        const id = newId();
        const sealed = await h.built.services.sealer.seal(tx, { scope: org, table: 'inbound_sources', column: 'secret_sealed', row: id }, `s-${i}`);
        await exec(tx, sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
                           values (${org}, ${id}, 'standard', ${`s${i}`}, ${sealed}, ${newId()}, now())`);
      }
    });
    // Every org made through the API has a key from its first audit event (org.created seals
    // its details); an org row written directly is the one state with nothing sealed yet.
    await h.t.owner.query(`insert into organizations (org_id, slug, name) values ($1, 'keyless', 'Keyless')`, [newId()]);
  });
  afterAll(async () => h?.close());

  it('rotates with progress, shows the status, rolls back, and refuses what it cannot do', async () => {
    const status = await runBin(['keys', 'rotation-status'], env());
    expect(status.code, status.err).toBe(0);
    expect(status.out).toContain('acme:\n  active key');
    expect(status.out).toContain('globex:\n  active key');
    expect(status.out).toContain('keyless: no data key yet (nothing sealed)');

    // The 12 inbound secrets and the sealed part of each of the org's audit events so far.
    const [events] = await h.t.owner.query<{ n: number }>('select count(*)::int as n from audit_events where org_id = $1 and personal_sealed is not null', [h.orgId('acme')]);
    const values = 12 + (events?.n ?? 0);
    const rotated = await runBin(['keys', 'rotate-data-key', '--org', 'acme'], env());
    expect(rotated.code, rotated.err).toBe(0);
    expect(rotated.out).toContain(`re-encrypting ${values} values`);
    expect(rotated.out).toContain(`${values}/${values} values (100%)`);
    expect(rotated.out).toContain('the final sweep runs from');
    const [ev] = await h.t.owner.query<{ actor_id: string }>("select actor_id from audit_events where action = 'org_key.rotated'");
    expect(ev?.actor_id).toBe('cli keys rotate-data-key');

    // A second while the first waits for its sweep.
    const again = await runBin(['keys', 'rotate-data-key', '--org', 'acme'], env());
    expect(again.code).toBe(2);
    expect(again.err).toContain('already running');

    const back = await runBin(['keys', 'rollback-data-key', '--org', 'acme'], env());
    expect(back.code, back.err).toBe(0);
    expect(back.out).toContain('rolled back the data key of acme');
    const after = await runBin(['keys', 'rotation-status', '--org', 'acme'], env());
    expect(after.out).toMatch(/rotation \S+ \(rollback\)/);
    expect(after.out).toContain('rollback possible until');

    expect((await runBin(['keys', 'rotate-data-key', '--org', 'keyless'], env())).err).toContain('no data key yet');
    expect((await runBin(['keys', 'rotate-data-key', '--org', 'no-such-org'], env())).code).toBe(2);
    const usage = await runBin(['keys', 'rotate-data-key'], env());
    expect(usage.code).toBe(2);
    expect(usage.err).toContain('needs --org SLUG');
  });
});
