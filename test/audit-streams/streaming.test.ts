/**
 * Audit streaming end to end (issue 14), against real receivers on loopback (the development
 * opt-in): an HTTP receiver of signed NDJSON batches, a syslog collector over TCP and over TLS
 * parsing RFC 6587 octet-counted RFC 5424 frames. Events arrive complete and in order; a receiver
 * down, slow or failing loses nothing and leaves the request path alone; the cursor moves only
 * on acknowledgement; another org's events never travel; destinations pass the webhook guard.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createStreamSender, createStreamWorker, createSyslogTransport, FAILING_AFTER, SD_ID, STREAM_LEASE_SECONDS, type StreamSender, type StreamWorker,
} from '../../src/domains/audit-streams/index.js';
import { createWebhookTransport } from '../../src/domains/webhooks/index.js';
import { systemContext } from '../../src/kernel/context.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { client, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { NdjsonReceiver, SyslogReceiver } from './receivers.js';
import { auditSelect } from '../support/evidence.js';

interface Stream {
  id: string;
  hasAuthorization: boolean;
  kind: string;
  status: string;
  lastError: string | null;
  lagEvents: number;
  lagSeconds: number;
  cursorSeq: number;
  consecutiveFailures: number;
  lastDeliveredAt: string | null;
  enabled: boolean;
}
/**
 * Checks a batch's Standard Webhooks signature by `secret` (standardwebhooks' own verify parses
 * the body as one JSON document, which an NDJSON batch is not): the same HMAC over id.timestamp.body.
 */
function signedBy(secret: string, b: { body: string; headers: Record<string, unknown> }): boolean {
  const id = String(b.headers['webhook-id']);
  const ts = Number(b.headers['webhook-timestamp']);
  const expected = new Webhook(secret).sign(id, new Date(ts * 1000), b.body);
  return String(b.headers['webhook-signature']).split(' ').includes(expected);
}
interface Line { orgId: string; seq: number; id: string; action: string; details: { n?: number } }

/** A self-signed certificate for 127.0.0.1 (null when openssl is missing). */
function selfSigned(): { key: Buffer; cert: Buffer } | null {
  const dir = mkdtempSync(join(tmpdir(), 'palisade-stream-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe.each(ENGINES)('audit streaming on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let admin: Client;
  let http: NdjsonReceiver;
  let base: string;
  let syslog: SyslogReceiver;
  let syslogPort: number;
  const cert = selfSigned();
  const workers: StreamWorker[] = [];

  function sender(ca?: Buffer): StreamSender {
    return createStreamSender({
      http: createWebhookTransport({ allowLoopback: true, timeoutMs: 2000 }),
      syslog: createSyslogTransport({ allowLoopback: true, timeoutMs: 2000, closeGraceMs: 500, ...(ca ? { ca } : {}) }),
      clock: h.clock, hostname: 'palisade.test',
    });
  }
  /** A worker on the app's database and clock; pollMs 0: a caught-up org is due again at once (the clock is frozen). */
  function worker(opts: { batchEvents?: number; ca?: Buffer; send?: StreamSender } = {}): StreamWorker {
    const w = createStreamWorker({
      db: h.t.db, clock: h.clock, sealer: h.built.services.sealer, reader: h.built.services.auditReader, logger: h.logger,
      sender: opts.send ?? sender(opts.ca), pollMs: 0, random: () => 0.5, ...(opts.batchEvents ? { batchEvents: opts.batchEvents } : {}),
    });
    workers.push(w);
    return w;
  }
  async function addStream(body: Record<string, unknown>, org = acme, by = admin): Promise<{ stream: Stream; secret: string | null }> {
    const res = await by.call('POST', `/api/orgs/${org}/audit/streams`, body);
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }
  const status = async (id: string, org = acme, by = admin): Promise<Stream> => {
    const res = await by.call('GET', `/api/orgs/${org}/audit/streams/${id}`);
    expect(res.statusCode, res.body).toBe(200);
    return res.json();
  };
  /** `n` audit events in the org's chain, one transaction (the request path's own writer). */
  async function write(n: number, org = acme): Promise<void> {
    await h.t.db.withTenant({ orgId: org, projectIds: null }, async (tx) => {
      for (let i = 0; i < n; i++) await h.built.services.audit.append(tx, org, systemContext('stream-test'), { action: 'org.updated', details: { n: i } });
    });
  }
  const head = async (org = acme): Promise<number> =>
    Number((await h.t.owner.query<{ seq: string }>('select seq::text from audit_heads where org_id = $1', [org]))[0]?.seq ?? 0);
  /** Every seq from `after` + 1 to the head, once each and in order. */
  const expectComplete = async (seqs: number[], after: number, org = acme) => {
    const top = await head(org);
    expect(seqs).toEqual(Array.from({ length: top - after }, (_, i) => after + 1 + i));
  };

  beforeAll(async () => {
    h = await createTestApp(engine, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    http = new NdjsonReceiver();
    base = await http.start();
    syslog = new SyslogReceiver();
    syslogPort = await syslog.start();
  });
  afterAll(async () => {
    await http?.close();
    await syslog?.close();
    await h?.close();
  });
  beforeEach(async () => {
    // Tests move the clock: a fresh session, just stepped up, for each.
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
  });
  afterEach(async () => {
    for (const w of workers.splice(0)) await w.stop();
    await h.t.owner.query('delete from audit_streams');
    await h.t.owner.query('delete from audit_stream_orgs');
    http.batches.length = 0;
    http.refused = 0;
    http.maxInFlight = 0;
    http.answer = () => 200;
    syslog.messages.length = 0;
    syslog.errors.length = 0;
  });

  it('sends every event after the cursor, in order, in signed NDJSON batches, and reports ok with no lag', async () => {
    const { stream, secret } = await addStream({ kind: 'https', url: `${base}/siem?token=abc`, description: 'SIEM' });
    expect(secret).toMatch(/^whsec_/);
    expect(stream).toMatchObject({ kind: 'https', status: 'ok', enabled: true, lagEvents: 1 });
    const start = stream.cursorSeq;
    await write(1200);
    const w = worker();
    expect(await w.drain()).toBe(1201);
    const lines = http.events<Line>();
    await expectComplete(lines.map((l) => l.seq), start);
    // Its own creation is the first event it carries; then the writes, in the order they committed.
    expect(lines[0]?.action).toBe('audit.stream_created');
    expect(lines.slice(1).map((l) => l.details.n)).toEqual(Array.from({ length: 1200 }, (_, i) => i));
    expect(lines.every((l) => l.orgId === acme)).toBe(true);
    // Batches are bounded (500 events), typed and signed per Standard Webhooks.
    expect(http.batches.map((b) => b.body.split('\n').length - 1)).toEqual([500, 500, 201]);
    for (const b of http.batches) {
      expect(b.headers['content-type']).toBe('application/x-ndjson');
      expect(b.headers['user-agent']).toBe('Palisade-AuditStream/1');
      expect(b.headers['webhook-id']).toMatch(/^audit_[0-9a-f]{32}_\d+$/);
      expect(signedBy(secret ?? '', b)).toBe(true);
    }
    const first = http.batches[0] as { body: string; headers: Record<string, unknown> };
    expect(signedBy(secret ?? '', { ...first, body: first.body.replace('"org.updated"', '"org.deleted"') })).toBe(false);
    expect(signedBy(`whsec_${Buffer.alloc(32, 1).toString('base64')}`, first)).toBe(false);
    expect(await status(stream.id)).toMatchObject({ status: 'ok', lagEvents: 0, lagSeconds: 0, cursorSeq: await head(), lastError: null });
    // The secret left in the create answer only.
    const stored = await h.t.owner.query<{ j: string }>('select to_jsonb(s)::text as j from audit_streams s');
    const trail = await h.t.owner.query<{ j: string }>('select to_jsonb(a)::text as j from audit_events a');
    const listed = await admin.call('GET', `/api/orgs/${acme}/audit/streams`);
    for (const text of [stored.map((r) => r.j).join(), trail.map((r) => r.j).join(), listed.body, h.logs.join('')]) {
      expect(text.includes((secret ?? '').slice(6))).toBe(false);
    }
    // The trail keeps the receiver's origin, never its path or query (a token often lives there).
    expect(trail.map((r) => r.j).join()).not.toContain('token=abc');
  });

  it('streams RFC 5424 over TCP with octet counting, the event as structured data and as JSON', async () => {
    const { stream, secret } = await addStream({ kind: 'syslog', host: '127.0.0.1', port: syslogPort, tls: false });
    expect(secret).toBeNull();
    await write(300);
    expect(await worker({ batchEvents: 100 }).drain()).toBe(301);
    expect(syslog.errors).toEqual([]);
    expect(syslog.connections).toBeGreaterThanOrEqual(4);
    const events = syslog.events<Line>();
    await expectComplete(events.map((e) => e.seq), stream.cursorSeq);
    const m = syslog.messages[1];
    expect(m).toMatchObject({ version: 1, hostname: 'palisade.test', appName: 'palisade', procId: '-', msgId: 'org.updated', pri: 13 * 8 + 6 });
    expect(m?.sd[SD_ID]).toMatchObject({ org: acme, seq: String(events[1]?.seq), action: 'org.updated', result: 'success', actorType: 'system', actorId: 'stream-test' });
    expect(new Date(m?.timestamp ?? '').toString()).not.toBe('Invalid Date');
    expect(await status(stream.id)).toMatchObject({ status: 'ok', lagEvents: 0 });
  });

  it('streams syslog over TLS, verifying the receiver\u2019s certificate', async (ctx) => {
    if (!cert) return ctx.skip();
    const secure = new SyslogReceiver(cert);
    const port = await secure.start();
    try {
      const { stream } = await addStream({ kind: 'syslog', host: '127.0.0.1', port });
      expect(stream).toMatchObject({ kind: 'syslog' });
      await write(50);
      // A worker that does not trust the certificate sends nothing and says why.
      expect(await worker().drain()).toBe(51);
      expect(secure.messages).toHaveLength(0);
      expect(await status(stream.id)).toMatchObject({ status: 'retrying', lastError: 'tls_error', cursorSeq: stream.cursorSeq });
      h.clock.advance(2000);
      expect(await worker({ ca: cert.cert }).drain()).toBe(51);
      await expectComplete(secure.events<Line>().map((e) => e.seq), stream.cursorSeq);
      expect(secure.errors).toEqual([]);
      expect(await status(stream.id)).toMatchObject({ status: 'ok', lagEvents: 0, lastError: null });
    } finally {
      await secure.close();
    }
  });

  it('loses nothing while the receiver is down: retries with backoff, then resumes from the cursor', async () => {
    const down = new NdjsonReceiver();
    const url = await down.start();
    const port = Number(new URL(url).port);
    await down.close();
    const { stream } = await addStream({ kind: 'https', url: `${url}/in` });
    const w = worker({ batchEvents: 40 });
    await write(100);
    expect(await w.drain()).toBe(40);
    expect(await w.drain()).toBe(0); // not due before its backoff
    let s = await status(stream.id);
    expect(s).toMatchObject({ status: 'retrying', lastError: 'connection_refused', cursorSeq: stream.cursorSeq, consecutiveFailures: 1, lagEvents: 101 });
    h.clock.advance(2000);
    expect(await w.drain()).toBe(40);
    expect((await status(stream.id)).consecutiveFailures).toBe(2);
    // Back up on the same port: the next attempt sends from the cursor, then the rest.
    await down.start(port);
    try {
      await write(20);
      h.clock.advance(10_000);
      expect(await w.drain()).toBe(121);
      await expectComplete(down.events<Line>().map((e) => e.seq), stream.cursorSeq);
      s = await status(stream.id);
      expect(s).toMatchObject({ status: 'ok', lagEvents: 0, consecutiveFailures: 0, lastError: null });
    } finally {
      await down.close();
    }
  });

  it('says failing after repeated 500s, with a short code and its lag, and recovers', async () => {
    const { stream } = await addStream({ kind: 'https', url: `${base}/flaky` });
    http.answer = () => 500;
    await write(10);
    const w = worker();
    for (let i = 1; i <= FAILING_AFTER; i++) {
      expect(await w.drain()).toBe(11);
      const s = await status(stream.id);
      expect(s).toMatchObject({ status: i >= FAILING_AFTER ? 'failing' : 'retrying', lastError: 'http_status_500', consecutiveFailures: i, cursorSeq: stream.cursorSeq });
      h.clock.advance(120_000);
    }
    const failing = await status(stream.id);
    expect(failing.lagEvents).toBe(11);
    expect(failing.lagSeconds).toBeGreaterThanOrEqual(4 * 120);
    expect(http.batches).toHaveLength(0);
    expect(http.refused).toBe(FAILING_AFTER);
    http.answer = () => 200;
    expect(await w.drain()).toBe(11);
    expect(await status(stream.id)).toMatchObject({ status: 'ok', lagEvents: 0 });
    await expectComplete(http.events<Line>().map((e) => e.seq), stream.cursorSeq);
  });

  it('keeps batches bounded and one in flight under a slow receiver, and the request path does not wait for it', async () => {
    const { stream } = await addStream({ kind: 'https', url: `${base}/slow` });
    await write(35);
    const w = worker({ batchEvents: 10 });
    http.hold();
    const pass = w.tick();
    // While the receiver sits on a batch, the API writes as usual (requests append to the trail only).
    for (let i = 0; i < 5; i++) {
      const res = await admin.call('POST', `/api/orgs/${acme}/projects`, { name: `slow ${engine} ${i}` });
      expect(res.statusCode, res.body).toBe(201);
    }
    expect(http.inFlight).toBe(1);
    expect(http.batches).toHaveLength(0);
    http.release();
    expect(await pass).toBe(10);
    http.answer = () => ({ status: 200, delayMs: 30 });
    expect(await w.drain()).toBe(31);
    expect(http.maxInFlight).toBe(1);
    expect(Math.max(...http.batches.map((b) => b.body.split('\n').length - 1))).toBe(10);
    await expectComplete(http.events<Line>().map((e) => e.seq), stream.cursorSeq);
  });

  it('serves orgs side by side: receivers slow to accept each batch do not add up across orgs', async () => {
    // Review of issue 14 (P2): orgs served one after another let a receiver answering just under
    // the timeout delay every other org's stream by as much, each pass.
    const globexAdmin = client(h, await h.cookieFor(h.user('globex', 'admin').email));
    await addStream({ kind: 'https', url: `${base}/slow-acme` });
    await addStream({ kind: 'https', url: `${base}/slow-globex` }, globex, globexAdmin);
    await write(3);
    await write(3, globex);
    http.answer = () => ({ status: 200, delayMs: 1500 });
    const w = worker();
    const started = Date.now();
    await w.tick();
    // Both orgs' batches were accepted: one after the other that is at least 3 s.
    expect(http.batches).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(2800);
  });

  it('sends each batch once with two workers at once (leases), and again after a worker died holding one', async () => {
    const { stream } = await addStream({ kind: 'https', url: `${base}/pair` });
    await write(200);
    http.answer = () => ({ status: 200, delayMs: 5 });
    const [a, b] = [worker({ batchEvents: 25 }), worker({ batchEvents: 25 })];
    await Promise.all([a.drain(), b.drain()]);
    expect(http.maxInFlight).toBe(1);
    await expectComplete(http.events<Line>().map((e) => e.seq), stream.cursorSeq);

    // A worker that dies after the receiver took a batch and before the cursor moved: the batch
    // is sent again once the lease runs out (at least once), and nothing is skipped.
    await write(10);
    const real = sender();
    let died = false;
    const dying = worker({
      send: {
        async send(target, events, batchId) {
          await real.send(target, events, batchId);
          died = true;
          throw new Error('worker killed');
        },
      },
    });
    await dying.tick();
    expect(died).toBe(true);
    const before = http.events<Line>().length;
    expect(await worker().drain()).toBe(0); // still leased
    h.clock.advance((STREAM_LEASE_SECONDS + 1) * 1000);
    expect(await worker().drain()).toBe(10);
    const seqs = http.events<Line>().map((e) => e.seq);
    // The dying worker's batch arrived, then the same ten again.
    expect(seqs.slice(before - 10, before)).toEqual(seqs.slice(before));
    expect([...new Set(seqs)]).toEqual(Array.from({ length: (await head()) - stream.cursorSeq }, (_, i) => stream.cursorSeq + 1 + i));
  });

  it('never carries another org\u2019s events, and another org cannot see or touch the stream', async () => {
    const { stream } = await addStream({ kind: 'https', url: `${base}/acme` });
    const globexAdmin = client(h, await h.cookieFor(h.user('globex', 'admin').email));
    await write(20, globex);
    await write(5);
    await write(20, globex);
    await worker().drain();
    expect(http.events<Line>().every((l) => l.orgId === acme)).toBe(true);
    await expectComplete(http.events<Line>().map((e) => e.seq), stream.cursorSeq);
    for (const [method, url, body] of [
      ['GET', `/api/orgs/${globex}/audit/streams/${stream.id}`, undefined],
      ['PATCH', `/api/orgs/${globex}/audit/streams/${stream.id}`, { enabled: false }],
      ['DELETE', `/api/orgs/${globex}/audit/streams/${stream.id}`, undefined],
      ['POST', `/api/orgs/${globex}/audit/streams/${stream.id}/test`, undefined],
      ['POST', `/api/orgs/${globex}/audit/streams/${stream.id}/rotate-secret`, undefined],
      ['GET', `/api/orgs/${acme}/audit/streams`, undefined],
    ] as const) {
      const res = await globexAdmin.call(method, url, body);
      expect(res.statusCode, `${method} ${url}`).toBe(404);
    }
    expect((await globexAdmin.call('GET', `/api/orgs/${globex}/audit/streams`)).json<{ streams: Stream[] }>().streams).toEqual([]);
    // Members without audit:stream are refused.
    const member = client(h, await h.cookieFor(h.user('acme', 'member').email));
    expect((await member.call('GET', `/api/orgs/${acme}/audit/streams`)).statusCode).toBe(403);
  });

  it('sends the receiver\u2019s Authorization header, stored sealed and never shown, dropped with a new URL, refused with a line break', async () => {
    const token = 'Splunk 8f1c2d3e-auth-canary-4b5a';
    const { stream } = await addStream({ kind: 'https', url: `${base}/hec`, authorization: token });
    expect(stream.hasAuthorization).toBe(true);
    await write(2);
    const w = worker();
    await w.drain();
    // Every batch carries it, and so does the test event (the last batch).
    await admin.call('POST', `/api/orgs/${acme}/audit/streams/${stream.id}/test`);
    expect(http.batches.length).toBeGreaterThan(1);
    for (const b of http.batches) expect(b.headers.authorization).toBe(token);
    // Sealed in the row; in no answer, trail or log.
    const stored = await h.t.owner.query<{ j: string; sealed: string }>('select to_jsonb(s)::text as j, auth_header_sealed as sealed from audit_streams s');
    expect(stored[0]?.sealed).toMatch(/^v1\./);
    const trail = await h.t.owner.query<{ j: string }>('select to_jsonb(a)::text as j from audit_events a');
    const listed = await admin.call('GET', `/api/orgs/${acme}/audit/streams`);
    for (const text of [stored.map((r) => r.j).join(), trail.map((r) => r.j).join(), listed.body, h.logs.join('')]) expect(text).not.toContain('auth-canary');
    // Header injection and a syslog stream's header: 400, nothing written.
    for (const bad of ['Bearer a\r\nX-Evil: 1', 'Bearer a\nb', ' Bearer', '']) expect((await admin.call('PATCH', `/api/orgs/${acme}/audit/streams/${stream.id}`, { authorization: bad })).statusCode, bad).toBe(400);
    const sys = await admin.call('POST', `/api/orgs/${acme}/audit/streams`, { kind: 'syslog', host: '127.0.0.1', port: syslogPort, tls: false, authorization: 'Bearer x' });
    expect(sys.statusCode).toBe(400);
    // Replaced, then a new URL without one drops it: a header meant for one receiver never reaches another.
    const replaced = await admin.call('PATCH', `/api/orgs/${acme}/audit/streams/${stream.id}`, { authorization: 'Bearer next-auth-canary' });
    expect(replaced.json()).toMatchObject({ hasAuthorization: true });
    const moved = await admin.call('PATCH', `/api/orgs/${acme}/audit/streams/${stream.id}`, { url: `${base}/elsewhere` });
    expect(moved.json()).toMatchObject({ hasAuthorization: false });
    http.batches.length = 0;
    await write(1);
    await w.drain();
    expect(http.batches.length).toBeGreaterThan(0);
    for (const b of http.batches) expect(b.headers.authorization).toBeUndefined();
    const details = (await auditSelect<{ details: Record<string, unknown> }>(h, ['details'], `where org_id = $1 and action = 'audit.stream_updated' order by seq`, [acme])).map((r) => r.details.authorization);
    expect(details).toEqual(['replaced', 'removed']);
  });

  it('sends a test event on request, disables and re-enables, rotates the secret, deletes', async () => {
    const { stream, secret } = await addStream({ kind: 'https', url: `${base}/ops`, enabled: false });
    expect(stream.status).toBe('disabled');
    const test = await admin.call('POST', `/api/orgs/${acme}/audit/streams/${stream.id}/test`);
    expect(test.json()).toMatchObject({ ok: true, error: null });
    expect(http.events<Line>()).toMatchObject([{ seq: 0, action: 'audit.stream_test', orgId: acme }]);
    http.answer = () => 503;
    expect((await admin.call('POST', `/api/orgs/${acme}/audit/streams/${stream.id}/test`)).json()).toMatchObject({ ok: false, error: 'http_status_503' });
    http.answer = () => 200;
    http.batches.length = 0;
    // Disabled: nothing is sent, the cursor waits.
    await write(5);
    const w = worker();
    expect(await w.drain()).toBe(0);
    const enabled = await admin.call('PATCH', `/api/orgs/${acme}/audit/streams/${stream.id}`, { enabled: true });
    expect(enabled.json()).toMatchObject({ enabled: true, status: 'ok' });
    expect(await w.drain()).toBeGreaterThan(5);
    await expectComplete(http.events<Line>().map((e) => e.seq), stream.cursorSeq);
    const rotated = await admin.call('POST', `/api/orgs/${acme}/audit/streams/${stream.id}/rotate-secret`);
    const next = rotated.json<{ secret: string }>().secret;
    expect(next).not.toBe(secret);
    await write(1);
    http.batches.length = 0;
    await w.drain();
    // Both secrets sign during the overlap.
    for (const s of [secret, next]) expect(signedBy(s ?? '', http.batches[0] as { body: string; headers: Record<string, unknown> })).toBe(true);
    expect((await admin.call('DELETE', `/api/orgs/${acme}/audit/streams/${stream.id}`)).statusCode).toBe(204);
    expect((await admin.call('GET', `/api/orgs/${acme}/audit/streams/${stream.id}`)).statusCode).toBe(404);
    expect(await h.t.owner.query('select 1 from audit_stream_orgs where org_id = $1', [acme])).toHaveLength(0);
    const actions = (await h.t.owner.query<{ action: string }>(`select action from audit_events where org_id = $1 and target_id = $2 order by seq`, [acme, stream.id])).map((r) => r.action);
    expect(actions).toEqual(['audit.stream_created', 'audit.stream_tested', 'audit.stream_tested', 'audit.stream_updated', 'audit.stream_secret_rotated', 'audit.stream_deleted']);
  });
});
