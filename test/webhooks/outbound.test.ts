/**
 * Outbound webhooks end to end, with a real receiver on loopback (the development opt-in) and
 * the Standard Webhooks library verifying what we sign: the outbox commits with the change,
 * retries back off, a day of failures disables the endpoint, redelivery and secret rotation
 * work, a worker that dies mid-delivery loses nothing, and destinations are checked.
 */
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createWebhookTransport, createWebhookWorker, LEASE_SECONDS, MAX_ATTEMPTS, RETRY_DELAYS_SECONDS } from '../../src/domains/webhooks/index.js';
import { systemContext } from '../../src/kernel/context.js';
import { createTestApp, type Problem, type TestApp } from '../support/app.js';
import { client, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { Receiver } from './receiver.js';
import { auditRows } from '../support/evidence.js';

interface Endpoint {
  id: string;
  url: string;
  events: string[];
  enabled: boolean;
  disabledReason: string | null;
}
interface Delivery {
  id: string;
  messageId: string;
  eventType: string;
  status: string;
  attempts: { attempt: number; status: number | null; latencyMs: number; error: string | null }[];
}

describe.each(ENGINES)('outbound webhooks on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let admin: Client;
  let receiver: Receiver;
  let base: string;

  const worker = () => h.built.services.webhookWorker;
  async function addEndpoint(events: string[], path = '/hook', org = acme, by = admin): Promise<{ endpoint: Endpoint; secret: string }> {
    const res = await by.call('POST', `/api/orgs/${org}/webhooks`, { url: `${base}${path}`, events });
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }
  async function newProject(name = `p-${Math.random().toString(36).slice(2, 8)}`): Promise<string> {
    const res = await admin.call('POST', `/api/orgs/${acme}/projects`, { name });
    expect(res.statusCode).toBe(201);
    return res.json<{ id: string }>().id;
  }
  const deliveries = async (endpointId: string, org = acme) =>
    (await admin.call('GET', `/api/orgs/${org}/webhooks/${endpointId}/deliveries?limit=100`)).json<{ deliveries: Delivery[] }>().deliveries;
  const verify = (secret: string, i: number) => {
    const r = receiver.received[i];
    if (!r) throw new Error(`no request ${i}`);
    return new Webhook(secret).verify(r.body, r.headers as Record<string, string>) as { type: string; data: { target: { id: string } | null; orgId: string } };
  };

  beforeAll(async () => {
    h = await createTestApp(engine, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
  });
  afterAll(async () => h?.close());
  beforeAll(async () => {
    receiver = new Receiver();
    base = await receiver.start();
  });
  afterAll(async () => receiver?.close());
  let clockStart = 0;
  beforeEach(() => {
    clockStart = h.clock.now().getTime();
  });
  afterEach(async () => {
    // Tests that move the clock put it back, with a fresh session for the next one.
    if (h.clock.now().getTime() !== clockStart) {
      h.clock.advance(clockStart - h.clock.now().getTime());
      admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    }
    // Each test starts from no endpoint and an empty receiver.
    await h.t.owner.query('delete from webhook_endpoints');
    await h.t.owner.query('delete from webhook_due');
    receiver.received.length = 0;
    receiver.answer = () => 204;
  });

  it('delivers an audited change, signed per Standard Webhooks, from the same transaction', async () => {
    const { endpoint, secret } = await addEndpoint(['project.created']);
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    const listed = await admin.call('GET', `/api/orgs/${acme}/webhooks`);
    expect(listed.body).not.toContain(secret.slice(6));
    const stored = await h.t.owner.query<{ j: string }>('select to_jsonb(e)::text as j from webhook_endpoints e');
    expect(stored[0]?.j).not.toContain(secret.slice(6));

    const projectId = await newProject();
    await newProject();
    expect(await worker().drain()).toBe(2);
    expect(receiver.received).toHaveLength(2);
    const events = [verify(secret, 0), verify(secret, 1)];
    expect(events.map((e) => e.type)).toEqual(['project.created', 'project.created']);
    expect(events.every((e) => e.data.orgId === acme)).toBe(true);
    expect(events.map((e) => e.data.target?.id)).toContain(projectId);
    expect(receiver.received[0]?.headers['webhook-id']).toMatch(/^msg_[0-9a-f]{32}$/);
    expect(receiver.received[0]?.headers['user-agent']).toBe('Palisade-Webhooks/1');
    // Tampering with the body breaks the signature the library checks.
    const tampered = { ...receiver.received[0], body: (receiver.received[0]?.body ?? '').replace('project.created', 'project.deleted') };
    expect(() => new Webhook(secret).verify(tampered.body, tampered.headers as Record<string, string>)).toThrow();
    const log = await deliveries(endpoint.id);
    expect(log.map((d) => d.status)).toEqual(['succeeded', 'succeeded']);
    expect(log[0]?.attempts[0]).toMatchObject({ attempt: 1, status: 204, error: null });

    // A change that rolls back sends nothing: the delivery was written in its transaction.
    await expect(
      h.t.db.withTenant({ orgId: acme, projectIds: null }, async (tx) => {
        await h.built.services.audit.append(tx, acme, systemContext('test'), { action: 'project.created', target: { type: 'project', id: projectId } });
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    expect(await worker().drain()).toBe(0);
    expect(receiver.received).toHaveLength(2);
  });

  it('sends each endpoint only its subscribed events of its own org, and nothing to disabled ones', async () => {
    const assets = await addEndpoint(['asset.created'], '/assets');
    const all = await addEndpoint(['*'], '/all');
    const off = await addEndpoint(['*'], '/off');
    expect((await admin.call('PATCH', `/api/orgs/${acme}/webhooks/${off.endpoint.id}`, { enabled: false })).statusCode).toBe(200);
    const globexAdmin = client(h, await h.cookieFor(h.user('globex', 'admin').email));
    await addEndpoint(['*'], '/globex', globex, globexAdmin);
    await newProject();
    await worker().drain();
    expect(receiver.received).toHaveLength(1);
    expect((await deliveries(all.endpoint.id)).map((d) => d.eventType)).toEqual(['project.created']);
    expect(await deliveries(assets.endpoint.id)).toEqual([]);
    expect(await deliveries(off.endpoint.id)).toEqual([]);
    // Another org's endpoints are not even visible.
    expect((await admin.call('GET', `/api/orgs/${acme}/webhooks`)).json<{ endpoints: Endpoint[] }>().endpoints.map((e) => e.url).sort()).toEqual(
      [`${base}/all`, `${base}/assets`, `${base}/off`],
    );
  });

  it('retries with backoff under the same webhook-id, then records success', async () => {
    const { endpoint, secret } = await addEndpoint(['project.created']);
    receiver.answer = (_r, n) => (n <= 2 ? 503 : n === 3 ? { status: 302, headers: { location: 'http://169.254.169.254/' } } : 200);
    await newProject();
    expect(await worker().drain()).toBe(1);
    expect(await worker().drain()).toBe(0); // not due yet
    for (const delay of RETRY_DELAYS_SECONDS.slice(0, 3)) {
      h.clock.advance(delay * 1200 + 1000);
      expect(await worker().drain()).toBe(1);
    }
    expect(receiver.received).toHaveLength(4);
    expect(new Set(receiver.received.map((r) => r.headers['webhook-id'])).size).toBe(1);
    for (let i = 0; i < 4; i++) {
      const r = receiver.received[i];
      const at = new Date(Number(r?.headers['webhook-timestamp']) * 1000);
      expect(Math.abs(at.getTime() - h.clock.now().getTime())).toBeLessThan(600_000);
    }
    verify(secret, 3);
    const [d] = await deliveries(endpoint.id);
    expect(d?.status).toBe('succeeded');
    expect(d?.attempts.map((a) => [a.status, a.error])).toEqual([
      [503, 'http status 503'], [503, 'http status 503'], [302, 'redirect not followed (302)'], [200, null],
    ]);
    expect(d?.attempts.every((a) => a.latencyMs >= 0)).toBe(true);
  });

  it('disables an endpoint that fails an event for its whole schedule (about a day)', async () => {
    const { endpoint } = await addEndpoint(['project.created', 'project.updated']);
    receiver.answer = () => 500;
    await newProject();
    await worker().drain();
    for (let i = 1; i < MAX_ATTEMPTS; i++) {
      h.clock.advance((RETRY_DELAYS_SECONDS[i - 1] ?? 0) * 1200 + 1000);
      await worker().drain();
    }
    expect(receiver.received).toHaveLength(MAX_ATTEMPTS);
    // A day has passed on the clock: sign in anew (the session has expired meanwhile).
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    const e = (await admin.call('GET', `/api/orgs/${acme}/webhooks/${endpoint.id}`)).json<Endpoint>();
    expect(e).toMatchObject({ enabled: false, disabledReason: 'failing' });
    expect((await deliveries(endpoint.id))[0]?.status).toBe('failed');
    const audit = await h.t.owner.query<{ actor_type: string }>(
      "select actor_type from audit_events where org_id = $1 and action = 'webhook.endpoint_disabled' and target_id = $2", [acme, endpoint.id],
    );
    expect(audit).toEqual([{ actor_type: 'system' }]);
    // Disabled: new events are not queued for it; re-enabling resumes with the next event.
    await newProject();
    expect(await worker().drain()).toBe(0);
    receiver.answer = () => 200;
    expect((await admin.call('PATCH', `/api/orgs/${acme}/webhooks/${endpoint.id}`, { enabled: true })).json<Endpoint>().enabled).toBe(true);
    await newProject();
    expect(await worker().drain()).toBe(1);
  });

  it('redelivers a finished delivery on request, under its webhook-id', async () => {
    const { endpoint, secret } = await addEndpoint(['project.created']);
    await newProject();
    await worker().drain();
    const [first] = await deliveries(endpoint.id);
    const res = await admin.call('POST', `/api/orgs/${acme}/webhooks/${endpoint.id}/deliveries/${first?.id}/redeliver`);
    expect(res.statusCode, res.body).toBe(202);
    await worker().drain();
    expect(receiver.received).toHaveLength(2);
    expect(receiver.received[1]?.headers['webhook-id']).toBe(receiver.received[0]?.headers['webhook-id']);
    verify(secret, 1);
    // Another endpoint's delivery id, or a made-up one: not found.
    const other = await addEndpoint(['*'], '/other');
    expect((await admin.call('POST', `/api/orgs/${acme}/webhooks/${other.endpoint.id}/deliveries/${first?.id}/redeliver`)).statusCode).toBe(404);
  });

  it('rotates the secret with an overlap: both signatures until the old one expires', async () => {
    const { endpoint, secret: old } = await addEndpoint(['project.created']);
    const res = await admin.call('POST', `/api/orgs/${acme}/webhooks/${endpoint.id}/rotate-secret`);
    expect(res.statusCode, res.body).toBe(200);
    const { secret: fresh } = res.json<{ secret: string }>();
    expect(fresh).not.toBe(old);
    await newProject();
    await worker().drain();
    expect(receiver.received[0]?.headers['webhook-signature']?.toString().split(' ')).toHaveLength(2);
    verify(old, 0);
    verify(fresh, 0);
    // A day later the old secret no longer signs. Moving the clock a day invalidates the
    // library's 5-minute timestamp check, so the signatures are compared by hand here.
    h.clock.advance(24 * 3600 * 1000 + 1000);
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    await newProject();
    await worker().drain();
    const sigs = receiver.received[1]?.headers['webhook-signature']?.toString().split(' ') ?? [];
    expect(sigs).toHaveLength(1);
    const r = receiver.received[1];
    const expected = new Webhook(fresh).sign(String(r?.headers['webhook-id']), new Date(Number(r?.headers['webhook-timestamp']) * 1000), r?.body ?? '');
    expect(sigs[0]).toBe(expected);
  });

  it('loses nothing when a worker dies mid-delivery: the next one delivers after the lease', async () => {
    const { endpoint } = await addEndpoint(['project.created']);
    receiver.answer = () => 'hang';
    await newProject();
    // A worker whose sends never return, as if its process had died with them in flight.
    const dead = createWebhookWorker({
      db: h.t.db, clock: h.clock, sealer: h.built.services.sealer, audit: h.built.services.audit, logger: quietLogger(),
      transport: { send: () => new Promise(() => undefined) },
    });
    void dead.tick();
    await receiver.waitFor(0);
    await waitUntil(async () => (await h.t.owner.query<{ n: number }>('select count(*)::int as n from webhook_deliveries where lease_until is not null'))[0]?.n === 1);
    receiver.answer = () => 200;
    // Within the lease nobody else takes it; after it, the next worker does, under the same id.
    expect(await worker().drain()).toBe(0);
    h.clock.advance((LEASE_SECONDS + 1) * 1000);
    expect(await worker().drain()).toBe(1);
    const [d] = await deliveries(endpoint.id);
    expect(d?.status).toBe('succeeded');
    expect(d?.attempts.map((a) => a.attempt)).toEqual([2]);
  });

  // In full: refuses destinations that are private, link-local, metadata or malformed; loopback
  // only with the opt-in
  it('refuses private, link-local, metadata or malformed destinations', async () => {
    for (const url of [
      'http://10.0.0.1/hook', 'http://169.254.169.254/latest/meta-data/', 'http://[::ffff:169.254.169.254]/', 'http://192.168.1.1/',
      'http://metadata.google.internal/', 'ftp://example.com/', 'http://user:pw@example.com/', 'not a url', `https://example.com/${'a'.repeat(2100)}`,
    ]) {
      const res = await admin.call('POST', `/api/orgs/${acme}/webhooks`, { url, events: ['*'] });
      expect(res.statusCode, url).toBe(400);
      expect(res.json<Problem>().code).toBe('validation_failed');
    }
    expect((await admin.call('POST', `/api/orgs/${acme}/webhooks`, { url: 'https://example.com/x', events: ['auth.login'] })).statusCode).toBe(400);
    // Without the opt-in, loopback is refused at creation and at delivery.
    const strict = createWebhookTransport({ allowLoopback: false });
    const outcome = await strict.send(`${base}/hook`, {}, '{}');
    expect(outcome).toMatchObject({ ok: false, error: 'destination refused: loopback' });
    expect(receiver.received).toHaveLength(0);
  });

  it('keeps secrets out of logs, problems and the audit trail', async () => {
    const { secret, endpoint } = await addEndpoint(['*'], '/services/T000/B000/XOXB-url-credential?token=CANARYQ');
    expect((await admin.call('PATCH', `/api/orgs/${acme}/webhooks/${endpoint.id}`, { url: `${base}/hooks/CANARYP` })).statusCode).toBe(200);
    const { secret: rotated } = (await admin.call('POST', `/api/orgs/${acme}/webhooks/${endpoint.id}/rotate-secret`)).json<{ secret: string }>();
    await newProject();
    await worker().drain();
    // The trail as audit:read opens it (details are sealed at rest).
    const trail = (await auditRows(h, '')).map((e) => ({ j: JSON.stringify(e) }));
    // A credential in the URL's path or query stays with the endpoint: the trail keeps the origin.
    const joined = trail.map((r) => r.j).join('');
    for (const canary of ['XOXB-url-credential', 'CANARYQ', 'CANARYP']) expect(joined).not.toContain(canary);
    expect(joined).toContain(`"destination":"${base}"`);
    for (const s of [secret, rotated]) {
      expect(h.logs.join('')).not.toContain(s.slice(6));
      expect(trail.map((r) => r.j).join('')).not.toContain(s.slice(6));
    }
  });
});

function quietLogger() {
  return { error: () => undefined, warn: () => undefined, info: () => undefined } as unknown as Parameters<typeof createWebhookWorker>[0]['logger'];
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
