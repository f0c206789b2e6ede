/**
 * The stream worker as `palisade serve` runs it (started by startBackground, woken by each
 * append in the process): a change made through the API reaches the receiver with no drain and
 * no clock moved, and stopping the worker leaves nothing leased.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { client } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { NdjsonReceiver } from './receivers.js';

describe.each(ENGINES)('the serving process\u2019s stream worker on %s', (engine) => {
  let h: TestApp;
  const receiver = new NdjsonReceiver();
  let base = '';
  beforeAll(async () => {
    h = await createTestApp(engine, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    base = await receiver.start();
  });
  afterAll(async () => {
    await receiver.close();
    await h?.close();
  });

  it('delivers changes made through the API as they commit, woken in-process', async () => {
    const acme = h.orgId('acme');
    const admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    h.built.services.streamWorker.start();
    try {
      const created = await admin.call('POST', `/api/orgs/${acme}/audit/streams`, { kind: 'https', url: `${base}/live` });
      expect(created.statusCode, created.body).toBe(201);
      await receiver.waitForEvents(1, 5000);
      for (let i = 0; i < 5; i++) expect((await admin.call('POST', `/api/orgs/${acme}/projects`, { name: `live ${engine} ${i}` })).statusCode).toBe(201);
      await receiver.waitForEvents(6, 5000);
      expect(receiver.events().map((e) => e.action)).toEqual(['audit.stream_created', ...Array(5).fill('project.created')]);
    } finally {
      await h.built.services.streamWorker.stop();
    }
    const leased = await h.t.owner.query('select 1 from audit_streams where lease_until is not null');
    expect(leased).toHaveLength(0);
  });
});
