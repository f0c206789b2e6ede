/**
 * Issue 15: a committed change wakes the webhook worker at once (NOTIFY on commit, in the audit
 * append's own statement when a delivery was queued) instead of at its next poll. The wake is a
 * hint: a listener that is cut reconnects, and polling alone still delivers everything.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWebhookTransport, createWebhookWorker, WEBHOOK_CHANNEL, type WebhookWorker } from '../../src/domains/webhooks/index.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { client, type Client } from '../support/client.js';
import { ENGINES, PG_ADMIN_URL } from '../support/db.js';
import { Receiver } from './receiver.js';

const HOUR = 3_600_000;

async function waitFor(check: () => boolean, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
  return Date.now() - start;
}

describe.each(ENGINES)('the webhook worker woken by a commit on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let admin: Client;
  let receiver: Receiver;
  let worker: WebhookWorker;
  const lost: unknown[] = [];

  beforeAll(async () => {
    h = await createTestApp(engine, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    acme = h.orgId('acme');
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    receiver = new Receiver();
    const base = await receiver.start();
    const res = await admin.call('POST', `/api/orgs/${acme}/webhooks`, { url: `${base}/hook`, events: ['project.created'] });
    expect(res.statusCode, res.body).toBe(201);
    // Polling an hour apart: whatever arrives sooner was woken by the commit.
    worker = createWebhookWorker({
      db: h.t.db, clock: h.clock, sealer: h.built.services.sealer, audit: h.built.services.audit, logger: h.logger,
      transport: createWebhookTransport({ allowLoopback: true, requireHttps: false }), idleMs: HOUR,
      onListenerLost: (err) => lost.push(err),
    });
    worker.start();
    await worker.listening();
  });
  afterAll(async () => {
    await worker?.stop();
    await receiver?.close();
    await h?.close();
  });

  const createProject = async () => {
    const res = await admin.call('POST', `/api/orgs/${acme}/projects`, { name: `p-${Math.random().toString(36).slice(2, 8)}` });
    expect(res.statusCode, res.body).toBe(201);
  };

  it('delivers a committed change at once, though the next poll is an hour away', async () => {
    const before = receiver.received.length;
    await createProject();
    const ms = await waitFor(() => receiver.received.length > before, 5_000);
    expect(ms).toBeLessThan(5_000);
    expect(receiver.received.length).toBe(before + 1);
  });

  it.runIf(engine === 'postgres')('notifies only when a delivery was queued, and only once the change commits', async () => {
    const listener = new pg.Client({ connectionString: h.t.ownerUrl ?? '' });
    await listener.connect();
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.payload ?? ''));
    await listener.query(`listen ${WEBHOOK_CHANNEL}`);
    try {
      // globex has no endpoint: its changes queue nothing and notify nobody.
      const globexAdmin = client(h, await h.cookieFor(h.user('globex', 'admin').email));
      expect((await globexAdmin.call('POST', `/api/orgs/${h.orgId('globex')}/projects`, { name: 'quiet' })).statusCode).toBe(201);
      await createProject();
      await waitFor(() => heard.length > 0, 5_000);
      await new Promise((r) => setTimeout(r, 100));
      expect(heard).toEqual([acme]);
    } finally {
      await listener.end();
    }
  });

  it.runIf(engine === 'postgres')('reconnects a listener whose connection was cut, and delivers what committed meanwhile', async () => {
    const admin2 = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin2.connect();
    try {
      const cut = await admin2.query(
        `select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and application_name = 'palisade-listen'`, [new URL(h.t.ownerUrl ?? '').pathname.slice(1)]);
      // The webhook worker's listener, and the authentication cache's once a request has started it.
      expect(cut.rowCount).toBeGreaterThanOrEqual(1);
    } finally {
      await admin2.end();
    }
    await waitFor(() => lost.length > 0, 5_000);
    const before = receiver.received.length;
    await createProject();
    // The listener is back within its retry delay (1 s) and wakes the worker once it is.
    await waitFor(() => receiver.received.length > before, 5_000);
  });
});
