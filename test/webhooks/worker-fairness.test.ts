/**
 * The outbound webhook worker across orgs and endpoints: what one claim leases, the order in
 * which orgs are served, and endpoints switched off and on. From the third attacker review (S3,
 * machine access, 96efc88); each "fixed" case failed against the code as reviewed.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { createWebhookWorker, newWebhookSecret, type DeliveryOutcome, type WebhookTransport } from '../../src/domains/webhooks/index.js';
import { createLogger } from '../../src/logging.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { client, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { seedTenant } from '../support/tenants.js';
import { freshOrg } from '../support/users.js';

interface DeliveryView {
  id: string;
  messageId: string;
  status: string;
}

/** A transport that answers every delivery at once and records what it was given. */
function recordingTransport(answer = 204): WebhookTransport & { sent: { url: string; id: string }[] } {
  const sent: { url: string; id: string }[] = [];
  return {
    sent,
    send(url: string, headers: Record<string, string>): Promise<DeliveryOutcome> {
      sent.push({ url, id: headers['webhook-id'] ?? '' });
      const ok = answer >= 200 && answer < 300;
      return Promise.resolve({ ok, status: answer, latencyMs: 1, error: ok ? null : `http status ${answer}`, address: null });
    },
  };
}

/** seedTenant's endpoint secret is not a Standard Webhooks secret: give the endpoint a real one. */
async function seedEndpoint(h: TestApp, slug: string): Promise<{ orgId: string; endpointId: string }> {
  const t = await seedTenant(h.t.db, h.built.services.audit, slug);
  await h.t.db.withTenant({ orgId: t.orgId, projectIds: null }, async (tx) => {
    const sealed = await h.built.services.sealer.seal(tx, { scope: t.orgId, table: 'webhook_endpoints', column: 'secret_sealed', row: t.endpointId }, newWebhookSecret());
    await sql`update webhook_endpoints set secret_sealed = ${sealed} where org_id = ${t.orgId} and id = ${t.endpointId}`.execute(tx);
  });
  return { orgId: t.orgId, endpointId: t.endpointId };
}

function workerFor(h: TestApp, transport: WebhookTransport, concurrency = 16) {
  const s = h.built.services;
  return createWebhookWorker({ db: h.t.db, clock: h.clock, sealer: s.sealer, audit: s.audit, logger: createLogger('silent'), transport, concurrency });
}

describe.each(ENGINES)('outbound worker fairness and delivery boundaries on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let admin: Client;
  let run = 0;
  const uniq = () => `${engine}-${run++}-${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
  });
  afterAll(async () => h?.close());
  beforeEach(async () => {
    // Worker tests count what a pass sends: no other org's work may be due.
    await h.t.owner.query('delete from webhook_due');
    await h.t.owner.query("update webhook_deliveries set status = 'failed', next_attempt_at = null where status = 'pending'");
  });

  // review S3 W-0, fixed. It failed as: a claim took far more than its batch (the LIMIT … FOR
  // UPDATE SKIP LOCKED subquery was rescanned per row of a nested-loop semi-join), so the batch no
  // longer fit its 60 s lease, and a second worker sent the rest again.
  it('a claim leases no more than its batch, so the batch fits its lease', async () => {
    const t = await seedEndpoint(h, `s3-claim-${uniq()}`);
    const due = new Date(h.clock.now().getTime() - 60_000).toISOString();
    await h.t.owner.query(
      `insert into webhook_deliveries (org_id, id, endpoint_id, message_id, event_type, payload, status, attempts, next_attempt_at, created_at)
       select $1, gen_random_uuid(), $2, 'msg_claim_' || g, 'asset.created', '{}', 'pending', 0, $3, $3 from generate_series(1, 40) g`,
      [t.orgId, t.endpointId, due],
    );
    await h.t.owner.query('insert into webhook_due (org_id, due_at) values ($1, $2)', [t.orgId, due]);
    const leased = async () =>
      (await h.t.owner.query<{ n: number }>("select count(*)::int as n from webhook_deliveries where org_id = $1 and status = 'pending' and lease_until is not null", [t.orgId]))[0]?.n ?? 0;
    const claims: number[] = [];
    const inner = recordingTransport();
    const transport: WebhookTransport = {
      async send(url, headers, body) {
        claims.push(await leased());
        return inner.send(url, headers, body);
      },
    };
    // concurrency 1: the worker's batch is 4 (what it can send within a lease at the transport's deadline).
    await workerFor(h, transport, 1).tick();
    expect(Math.max(...claims), 'deliveries leased at once by one claim (batch 4)').toBeLessThanOrEqual(4);
  });

  // review S3 W-3, fixed. It failed as: deliveries left pending on a disabled endpoint blocked
  // every other endpoint of the org (the claim picked the oldest due rows, then dropped them for
  // their endpoint).
  it('deliveries pending on a disabled endpoint do not hold up the org\u2019s other endpoints', async () => {
    const { orgId, cookie } = await freshOrg(h);
    const o = client(h, cookie);
    const add = async (url: string) => {
      const res = await o.call('POST', `/api/orgs/${orgId}/webhooks`, { url, events: ['project.created'] });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ endpoint: { id: string } }>().endpoint.id;
    };
    const oldUrl = `https://old.example.com/${uniq()}`;
    const newUrl = `https://new.example.com/${uniq()}`;
    const old = await add(oldUrl);
    for (let i = 0; i < 5; i++) expect((await o.call('POST', `/api/orgs/${orgId}/projects`, { name: `before ${i}` })).statusCode).toBe(201);
    // The old receiver is retired (switched off, its backlog kept); a new one takes over.
    expect((await o.call('PATCH', `/api/orgs/${orgId}/webhooks/${old}`, { enabled: false })).statusCode).toBe(200);
    h.clock.advance(1000);
    await add(newUrl);
    expect((await o.call('POST', `/api/orgs/${orgId}/projects`, { name: 'after' })).statusCode).toBe(201);
    const transport = recordingTransport();
    await workerFor(h, transport, 1).drain();
    expect(transport.sent.filter((s) => s.url === oldUrl)).toHaveLength(0);
    expect(transport.sent.filter((s) => s.url === newUrl), 'deliveries to the enabled endpoint').toHaveLength(1);
  });

  // review S3 W-1, fixed. It failed as: one org's backlog held the worker until it was drained,
  // so every other org's deliveries waited behind a tenant that floods its endpoints. Fix:
  // src/domains/webhooks/worker.ts (one batch per org per pass, round-robin due times).
  it('serves the orgs of a pass in turn: a flooding tenant does not hold back a quiet one', async () => {
    const t0 = h.clock.now().getTime();
    const at = (s: number) => new Date(t0 + s * 1000).toISOString();
    const insert = `insert into webhook_deliveries (org_id, id, endpoint_id, message_id, event_type, payload, status, attempts, next_attempt_at, created_at)
                    select $1, gen_random_uuid(), $2, $3 || g, 'asset.created', '{}', 'pending', 0, $4, $4 from generate_series(1, $5::int) g`;
    // Twenty noisy orgs (an org is free to create), each with three batches due.
    const noisy = await Promise.all(Array.from({ length: 20 }, (_, i) => seedEndpoint(h, `s3-noisy-${i}-${uniq()}`)));
    for (const n of noisy) {
      await h.t.owner.query(insert, [n.orgId, n.endpointId, 'msg_noisy_', at(-60), 12]);
      await h.t.owner.query('insert into webhook_due (org_id, due_at) values ($1, $2)', [n.orgId, at(-60)]);
    }
    // A quiet org with one event, queued after the flood began.
    const quiet = await seedEndpoint(h, `s3-quiet-${uniq()}`);
    await h.t.owner.query(insert, [quiet.orgId, quiet.endpointId, 'msg_quiet_', at(-30), 1]);
    await h.t.owner.query('insert into webhook_due (org_id, due_at) values ($1, $2)', [quiet.orgId, at(-30)]);

    const transport = recordingTransport();
    // concurrency 1: batches of 4, sent one after another, so the order is the worker's.
    expect(await workerFor(h, transport, 1).drain()).toBe(20 * 12 + 1);
    const waitedBehind = transport.sent.findIndex((s) => s.id === 'msg_quiet_1');
    // Fair: at most one batch of each noisy org per pass before the quiet org gets its turn.
    expect(waitedBehind, 'deliveries of other orgs sent before the quiet org\u2019s one event').toBeLessThan(2 * 20 * 4);
  });

  // review S3 W-2, fixed. It failed as: re-enabling an endpoint left the deliveries it had
  // pending stranded until some other event marked the org due. Fix: src/domains/webhooks/
  // service.ts + outbox.ts (re-enabling an endpoint marks its org due).
  it('re-enabling an endpoint sends the deliveries it had pending', async () => {
    const { orgId, cookie } = await freshOrg(h);
    const o = client(h, cookie);
    const url = `https://hooks.example.com/${uniq()}`;
    const created = await o.call('POST', `/api/orgs/${orgId}/webhooks`, { url, events: ['project.created'] });
    expect(created.statusCode, created.body).toBe(201);
    const endpointId = created.json<{ endpoint: { id: string } }>().endpoint.id;
    expect((await o.call('POST', `/api/orgs/${orgId}/projects`, { name: 'queued' })).statusCode).toBe(201);
    // Switched off before the worker came by: the pass finds nothing to send and unlists the org.
    expect((await o.call('PATCH', `/api/orgs/${orgId}/webhooks/${endpointId}`, { enabled: false })).statusCode).toBe(200);
    const transport = recordingTransport();
    const worker = workerFor(h, transport);
    await worker.drain();
    expect(transport.sent.filter((s) => s.url === url)).toHaveLength(0);
    // Back on: the pending event is due, and goes out.
    expect((await o.call('PATCH', `/api/orgs/${orgId}/webhooks/${endpointId}`, { enabled: true })).statusCode).toBe(200);
    await worker.drain();
    expect(transport.sent.filter((s) => s.url === url), 'deliveries sent after re-enabling').toHaveLength(1);
    const log = (await o.call('GET', `/api/orgs/${orgId}/webhooks/${endpointId}/deliveries`)).json<{ deliveries: DeliveryView[] }>().deliveries;
    expect(log.map((d) => d.status)).toEqual(['succeeded']);
  });

  // [review S3 W-4, open, in the closing note and docs/architecture.md] orgs claimed in one pass are served one
  // after another, each batch waiting for its slowest receiver (10 s deadline): twenty orgs whose receivers stall
  // delay a quiet org by minutes per pass. Fix: share the lanes across the orgs of a pass.
  // [review S3 W-5, fixed] destinations are resolved with a c-ares dns.Resolver (own timeout, no libuv threadpool),
  // so slow authoritative servers cannot stall argon2 and other lookups: see defaultResolver in
  // src/domains/webhooks/transport.ts; its localhost path is exercised by transport.test.ts.

  // review S3 (SOUND: tried and refused)
  it('a delivery is reachable only through its own endpoint and org (redelivery and log)', async () => {
    const globexAdmin = client(h, await h.cookieFor(h.user('globex', 'admin').email));
    const add = async (c: Client, org: string) => {
      const res = await c.call('POST', `/api/orgs/${org}/webhooks`, { url: `https://hooks.example.com/${uniq()}`, events: ['project.created'] });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ endpoint: { id: string } }>().endpoint.id;
    };
    const a1 = await add(admin, acme);
    const a2 = await add(admin, acme);
    const g1 = await add(globexAdmin, globex);
    expect((await admin.call('POST', `/api/orgs/${acme}/projects`, { name: `s3 ${uniq()}` })).statusCode).toBe(201);
    expect((await globexAdmin.call('POST', `/api/orgs/${globex}/projects`, { name: `s3 ${uniq()}` })).statusCode).toBe(201);
    await workerFor(h, recordingTransport()).drain();
    const logOf = async (c: Client, org: string, ep: string) =>
      (await c.call('GET', `/api/orgs/${org}/webhooks/${ep}/deliveries`)).json<{ deliveries: DeliveryView[] }>().deliveries;
    const [d1] = await logOf(admin, acme, a1);
    const [dg] = await logOf(globexAdmin, globex, g1);
    expect(d1?.status).toBe('succeeded');
    expect(dg?.status).toBe('succeeded');
    const redeliver = (c: Client, org: string, ep: string, d: string) => c.call('POST', `/api/orgs/${org}/webhooks/${ep}/deliveries/${d}/redeliver`);
    expect((await redeliver(admin, acme, a2, d1?.id as string)).statusCode).toBe(404); // another endpoint's delivery
    expect((await redeliver(admin, acme, a1, dg?.id as string)).statusCode).toBe(404); // another org's delivery
    expect((await redeliver(admin, globex, g1, dg?.id as string)).statusCode).toBe(404); // another org's path
    expect((await admin.call('GET', `/api/orgs/${acme}/webhooks/${g1}/deliveries`)).statusCode).toBe(404);
    expect((await logOf(admin, acme, a2)).map((d) => d.id)).not.toContain(d1?.id);
    const pending = await h.t.owner.query<{ n: number }>("select count(*)::int as n from webhook_deliveries where status = 'pending'");
    expect(pending[0]?.n).toBe(0);
  });
});
