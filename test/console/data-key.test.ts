import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import { exec } from '../../src/db/database.js';
import { createDataKeyJob, SWEEP_AFTER_MS } from '../../src/domains/keys/index.js';
import type { ManualClock } from '../../src/kernel/clock.js';
import { seriousViolations, signInAs, startConsole, type ConsoleHarness } from './browser.js';
import { audit } from '../support/evidence.js';

describe('console data-key rotation in Chromium', () => {
  let c: ConsoleHarness;
  beforeAll(async () => {
    c = await startConsole('pglite');
    const org = c.h.orgId('acme');
    await c.h.t.db.withTenant({ orgId: org }, async (tx) => {
      for (let i = 0; i < 40; i++) {
        const id = newId();
        const sealed = await c.h.built.services.sealer.seal(tx, { scope: org, table: 'inbound_sources', column: 'secret_sealed', row: id }, `s-${i}`);
        await exec(tx, sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
                           values (${org}, ${id}, 'standard', ${`s${i}`}, ${sealed}, ${newId()}, now())`);
      }
    });
  });
  afterAll(async () => {
    await c.close();
  });

  it('owner rotates after a confirmation and watches the progress reach done', async () => {
    const { page } = await c.newPage();
    const owner = c.h.user('acme', 'owner');
    const orgId = c.h.orgId('acme');
    await signInAs(page, owner.email, owner.password);
    await page.getByRole('banner').getByText(owner.email).waitFor();
    await page.goto(`/orgs/${orgId}/settings`);
    await page.getByRole('heading', { name: 'Data encryption key' }).waitFor();
    await page.getByText(/Active key/).waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    await page.getByRole('button', { name: 'Rotate data key' }).click();
    const confirm = page.getByRole('alert').filter({ hasText: 'Rotate the data key?' });
    await confirm.waitFor();
    expect(await seriousViolations(page)).toEqual([]);
    await confirm.getByRole('button', { name: 'Rotate now' }).click();
    const progress = page.getByRole('region', { name: 'Rotation progress' });
    // 40 inbound secrets, and the sealed part of every audit event the org has so far.
    const started = await progress.getByText(/^Values re-encrypted: 0 of \d+$/).textContent();
    const total = Number(/of (\d+)/.exec(started ?? '')?.[1]);
    expect(total).toBeGreaterThan(40);
    await progress.getByText(/Re-encrypting sealed values/).waitFor();
    expect(await seriousViolations(page)).toEqual([]);

    // The worker's job (not started by the test app): the pass, then the final sweep once the cache TTL has passed.
    const job = createDataKeyJob({ db: c.h.t.db, clock: c.h.clock, logger: c.h.logger, keys: c.h.built.services.dataKeys, batchSize: 10 });
    await job.drain();
    // An event the page's own requests appended while the pass ran may add to the total.
    await progress.getByText(/^Values re-encrypted: ([1-9]\d*) of \1$/).waitFor();
    (c.h.clock as ManualClock).advance(SWEEP_AFTER_MS);
    await job.drain();
    await progress.getByText('done').waitFor();
    await page.getByRole('list', { name: 'Retired keys' }).getByText(/can be made active again until/).waitFor();
    expect(await audit(c.h, orgId, 'org_key.rotated')).not.toEqual([]);

    // The way back, within the window: the retired key is active again, values move back under it.
    page.once('dialog', (d) => void d.accept());
    await page.getByRole('button', { name: 'Roll back to the previous key' }).click();
    await progress.getByText(/^Rollback started/).waitFor();
    await job.drain();
    // Events appended since (the rotation's own) are under the new key too: the count has grown.
    await progress.getByText(/^Values re-encrypted: ([1-9]\d*) of \1$/).waitFor();
    expect(await audit(c.h, orgId, 'org_key.rolled_back')).not.toEqual([]);
    expect(await seriousViolations(page)).toEqual([]);
    expect(c.answers.filter((a) => a.status >= 500)).toEqual([]);
  });

  it('shows an admin the key state without the rotate action', async () => {
    const { page } = await c.newPage();
    const admin = c.h.user('acme', 'admin');
    await signInAs(page, admin.email, admin.password);
    await page.getByRole('banner').getByText(admin.email).waitFor();
    await page.goto(`/orgs/${c.h.orgId('acme')}/settings`);
    await page.getByRole('heading', { name: 'Data encryption key' }).waitFor();
    await page.getByText(/Active key/).waitFor();
    expect(await page.getByRole('button', { name: 'Rotate data key' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Roll back to the previous key' }).count()).toBe(0);
    expect(await seriousViolations(page)).toEqual([]);
  });
});
