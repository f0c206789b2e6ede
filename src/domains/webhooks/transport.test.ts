import { execFileSync } from 'node:child_process';
import dc from 'node:diagnostics_channel';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { InvariantError } from '../../kernel/errors.js';
import { createWebhookTransport, USER_AGENT, type DeliveryOutcome, type ResolvedAddress } from './transport.js';

/**
 * Real loopback receivers. Every test also watches the client side: node:net reports each
 * connection attempt, so "refused" means no socket was even tried, not merely that the
 * receiver happened to see nothing.
 */

interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface Receiver {
  host: string;
  port: number;
  /** Base URL, e.g. http://127.0.0.1:1234 */
  base: string;
  requests: Received[];
  connections: number;
  closedSockets: number;
  close(): Promise<void>;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

const servers: Receiver[] = [];

async function receiver(host: string, handler: Handler = (_q, r) => r.writeHead(204).end()): Promise<Receiver> {
  const requests: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      handler(req, res);
    });
  });
  const r: Receiver = {
    host,
    port: 0,
    base: '',
    requests,
    connections: 0,
    closedSockets: 0,
    close: () =>
      new Promise((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
  server.on('connection', (socket: net.Socket) => {
    r.connections += 1;
    socket.on('close', () => (r.closedSockets += 1));
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(0, host, () => done());
  });
  r.port = (server.address() as net.AddressInfo).port;
  r.base = `http://${host.includes(':') ? `[${host}]` : host}:${r.port}`;
  servers.push(r);
  return r;
}

async function ipv6LoopbackAvailable(): Promise<boolean> {
  const probe = net.createServer();
  return new Promise((done) => {
    probe.once('error', () => done(false));
    probe.listen(0, '::1', () => probe.close(() => done(true)));
  });
}

async function closedPort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', () => done()));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((done) => probe.close(() => done()));
  return port;
}

const attempts: { address: string; port: number }[] = [];
const onClientSocket = (message: unknown): void => {
  const { socket } = message as { socket: net.Socket };
  socket.on('connectionAttempt', (address: string, port: number) => attempts.push({ address, port }));
};

let hasIpv6 = false;
beforeAll(async () => {
  dc.subscribe('net.client.socket', onClientSocket);
  hasIpv6 = await ipv6LoopbackAvailable();
});
afterAll(() => {
  dc.unsubscribe('net.client.socket', onClientSocket);
});
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  attempts.length = 0;
});

const secretHeaders = {
  'webhook-id': 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W',
  'webhook-timestamp': '1700000000',
  'webhook-signature': 'v1,CANARYSIGNATUREbase64LZqJ0N1ncLRw8lEjQ1ZThyQ0o=',
};
const body = JSON.stringify({ type: 'member.added', data: { canary: 'BODY-CANARY-7f3a', name: 'Zoë 🚀' } });

function expectNoLeak(outcome: DeliveryOutcome): void {
  const text = outcome.error ?? '';
  expect(text.length).toBeLessThanOrEqual(80);
  for (const secret of ['CANARY', 'BODY-CANARY', 'msg_', 'SECRET']) expect(text).not.toContain(secret);
}

function countingResolver(answers: (call: number) => ResolvedAddress[]): { resolve: (host: string) => Promise<ResolvedAddress[]>; calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    resolve: async (host) => {
      calls.push(host);
      return answers(calls.length);
    },
  };
}

const v4 = (address: string): ResolvedAddress => ({ address, family: 4 });
const v6 = (address: string): ResolvedAddress => ({ address, family: 6 });

describe('without the loopback opt-in (production)', () => {
  it.each<[string, (port: number) => string, string]>([
    ['127.0.0.1', (p) => `http://127.0.0.1:${p}/hook`, 'loopback'],
    ['127.0.0.1 as a decimal integer', (p) => `http://2130706433:${p}/`, 'loopback'],
    ['127.0.0.1 in hex short form', (p) => `http://0x7f.1:${p}/`, 'loopback'],
    ['127.0.0.1 IPv4-mapped', (p) => `http://[::ffff:127.0.0.1]:${p}/`, 'loopback'],
    ['localhost', (p) => `http://localhost:${p}/`, 'loopback'],
    ['a *.localhost name', (p) => `http://hooks.localhost:${p}/`, 'loopback'],
    ['0.0.0.0 (Linux connects it to this host)', (p) => `http://0.0.0.0:${p}/`, 'unspecified'],
    ['10.0.0.1', () => 'http://10.0.0.1/', 'private'],
    ['169.254.169.254', () => 'http://169.254.169.254/latest/meta-data/', 'metadata'],
    ['metadata.google.internal', () => 'http://metadata.google.internal/computeMetadata/v1/', 'metadata'],
  ])('refuses %s before any connection', async (_label, url, kind) => {
    const rx = await receiver('127.0.0.1');
    const dns = countingResolver(() => [v4('127.0.0.1')]);
    const t = createWebhookTransport({ allowLoopback: false, resolve: dns.resolve });
    const out = await t.send(url(rx.port), secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status: null, error: `destination refused: ${kind}`, address: null });
    expect(dns.calls).toEqual([]);
    expect(attempts).toEqual([]);
    expect(rx.connections).toBe(0);
  });

  it('refuses ::1 before any connection', async (ctx) => {
    if (!hasIpv6) ctx.skip('this machine has no IPv6 loopback (::1 cannot be bound)');
    const rx = await receiver('::1');
    const t = createWebhookTransport({ allowLoopback: false });
    const out = await t.send(`${rx.base}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status: null, error: 'destination refused: loopback' });
    expect(attempts).toEqual([]);
    expect(rx.connections).toBe(0);
  });

  it.each<[string, ResolvedAddress[], string]>([
    ['127.0.0.1', [v4('127.0.0.1')], 'loopback'],
    ['::1', [v6('::1')], 'loopback'],
    ['::ffff:127.0.0.1', [v6('::ffff:127.0.0.1')], 'loopback'],
    ['10.1.2.3', [v4('10.1.2.3')], 'private'],
    ['169.254.169.254', [v4('169.254.169.254')], 'metadata'],
    ['fd00:ec2::254', [v6('fd00:ec2::254')], 'metadata'],
    ['a public and a loopback address together', [v4('93.184.215.14'), v4('127.0.0.1')], 'loopback'],
    ['a public and a private IPv6 address together', [v6('2606:4700::1'), v6('fd00::5')], 'private'],
    ['something that is not an IP', [v4('127.1')], 'reserved'],
  ])('refuses a DNS name resolving to %s', async (_label, answers, kind) => {
    const rx = await receiver('127.0.0.1');
    const dns = countingResolver(() => answers);
    const t = createWebhookTransport({ allowLoopback: false, resolve: dns.resolve });
    const out = await t.send(`http://hooks.example.test:${rx.port}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status: null, error: `destination refused: ${kind}`, address: null });
    expect(dns.calls).toEqual(['hooks.example.test']);
    expect(attempts).toEqual([]);
    expect(rx.connections).toBe(0);
  });

  // In full: a name resolving to a public address first and loopback after is connected only to the
  // checked address
  it('connects a name that resolves public, then loopback, only to the checked address', async () => {
    const rx = await receiver('127.0.0.1');
    // 1.1.1.1 stands for "any public receiver": whatever happens there, it is not this machine.
    const dns = countingResolver((call) => (call === 1 ? [v4('1.1.1.1')] : [v4('127.0.0.1')]));
    const t = createWebhookTransport({ allowLoopback: false, resolve: dns.resolve, timeoutMs: 500 });
    const out = await t.send(`http://rebind.example.test:${rx.port}/`, secretHeaders, body);
    expect(dns.calls).toHaveLength(1);
    expect(attempts.length).toBeGreaterThan(0);
    expect(attempts.every((a) => a.address === '1.1.1.1')).toBe(true);
    expect(out.address === null || out.address === '1.1.1.1').toBe(true);
    expect(rx.connections).toBe(0);
  });

  it('reports DNS failures without throwing', async () => {
    const failing = createWebhookTransport({ allowLoopback: false, resolve: () => Promise.reject(new Error('SERVFAIL for secret.example')) });
    expect(await failing.send('https://hooks.example.test/', secretHeaders, body)).toMatchObject({ ok: false, error: 'dns lookup failed' });
    const empty = createWebhookTransport({ allowLoopback: false, resolve: async () => [] });
    expect(await empty.send('https://hooks.example.test/', secretHeaders, body)).toMatchObject({ ok: false, error: 'dns lookup failed' });
    expect(attempts).toEqual([]);
  });

  it('reports a bad URL as an invalid destination without throwing', async () => {
    const t = createWebhookTransport({ allowLoopback: false, requireHttps: true });
    expect(await t.send('http://hooks.example.com/', {}, body)).toMatchObject({ ok: false, error: 'invalid destination (url must use https)' });
    expect(await t.send('not a url', {}, body)).toMatchObject({ ok: false, error: 'invalid destination (invalid url)' });
  });
});

describe('with the loopback opt-in (development and tests)', () => {
  it('delivers to 127.0.0.1: 2xx is ok, headers and body arrive intact, latency is measured', async () => {
    const rx = await receiver('127.0.0.1');
    const t = createWebhookTransport({ allowLoopback: true });
    const out = await t.send(`${rx.base}/hooks/in?tenant=acme`, secretHeaders, body);
    expect(out).toMatchObject({ ok: true, status: 204, error: null, address: '127.0.0.1' });
    expect(out.latencyMs).toBeGreaterThanOrEqual(0);
    expect(out.latencyMs).toBeLessThan(5_000);
    expect(rx.requests).toHaveLength(1);
    const got = rx.requests[0] as Received;
    expect(got.method).toBe('POST');
    expect(got.url).toBe('/hooks/in?tenant=acme');
    expect(got.body).toBe(body);
    expect(got.headers).toMatchObject({
      ...secretHeaders,
      'content-type': 'application/json',
      'user-agent': USER_AGENT,
      'content-length': String(Buffer.byteLength(body)),
      host: `127.0.0.1:${rx.port}`,
    });
    expect(got.headers.connection).toBe('close');
  });

  it('delivers to [::1]', async (ctx) => {
    if (!hasIpv6) ctx.skip('this machine has no IPv6 loopback (::1 cannot be bound)');
    const rx = await receiver('::1', (_q, r) => r.writeHead(200).end('ok'));
    const t = createWebhookTransport({ allowLoopback: true });
    const out = await t.send(`${rx.base}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: true, status: 200, error: null, address: '::1' });
    expect(rx.requests[0]?.headers.host).toBe(`[::1]:${rx.port}`);
  });

  // In full: delivers to localhost through the default resolver (c-ares, localhost answered
  // locally), keeping the Host header
  it('delivers to localhost through the default resolver, keeping the Host header', async () => {
    const rx = await receiver('127.0.0.1');
    const t = createWebhookTransport({ allowLoopback: true });
    const out = await t.send(`http://localhost:${rx.port}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: true, status: 204 });
    expect(rx.requests[0]?.headers.host).toBe(`localhost:${rx.port}`);
  });

  it.each([
    ['10.0.0.1', 'http://10.0.0.1/', 'private'],
    ['169.254.169.254', 'http://169.254.169.254/latest/meta-data/', 'metadata'],
    ['[fd00:ec2::254]', 'http://[fd00:ec2::254]/', 'metadata'],
    ['a name resolving to 10.0.0.1', 'http://internal.example.test/', 'private'],
  ])('still refuses %s', async (_label, url, kind) => {
    const t = createWebhookTransport({ allowLoopback: true, resolve: async () => [v4('10.0.0.1')] });
    expect(await t.send(url, secretHeaders, body)).toMatchObject({ ok: false, status: null, error: `destination refused: ${kind}` });
    expect(attempts).toEqual([]);
  });

  it('connects to the checked answer, never to what the name resolves to later', async () => {
    const rx = await receiver('127.0.0.1');
    // The name exists nowhere but in this resolver: a delivery can only reach the receiver
    // through the pinned answer, not by node:net asking DNS again.
    const dns = countingResolver((call) => (call === 1 ? [v4('127.0.0.1')] : [v4('10.0.0.1')]));
    const t = createWebhookTransport({ allowLoopback: true, resolve: dns.resolve });
    const out = await t.send(`http://rebind.example.test:${rx.port}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: true, status: 204, address: '127.0.0.1' });
    expect(dns.calls).toHaveLength(1);
    expect(attempts.map((a) => a.address)).toEqual(['127.0.0.1']);
    expect(rx.requests[0]?.headers.host).toBe(`rebind.example.test:${rx.port}`);
  });

  it('tries every checked address (IPv6 then IPv4) and only those', async () => {
    const rx = await receiver('127.0.0.1');
    const t = createWebhookTransport({ allowLoopback: true, resolve: async () => [v6('::1'), v4('127.0.0.1')] });
    const out = await t.send(`http://dual.example.test:${rx.port}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: true, address: '127.0.0.1' });
    expect(attempts.every((a) => a.address === '::1' || a.address === '127.0.0.1')).toBe(true);
  });
});

describe('responses', () => {
  it.each([301, 302, 303, 307, 308])('does not follow a %i redirect to another receiver', async (status) => {
    const target = await receiver('127.0.0.1');
    const rx = await receiver('127.0.0.1', (_q, r) => r.writeHead(status, { location: `${target.base}/stolen` }).end());
    const t = createWebhookTransport({ allowLoopback: true });
    const out = await t.send(`${rx.base}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status, error: `redirect not followed (${status})` });
    expect(rx.requests).toHaveLength(1);
    expect(target.connections).toBe(0);
    expect(attempts.every((a) => a.port === rx.port)).toBe(true);
  });

  it('does not follow a redirect to the metadata address', async () => {
    const rx = await receiver('127.0.0.1', (_q, r) => r.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end());
    const t = createWebhookTransport({ allowLoopback: true });
    const out = await t.send(`${rx.base}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status: 302, error: 'redirect not followed (302)' });
    expect(attempts.map((a) => a.address)).toEqual(['127.0.0.1']);
  });

  it('a 500 is a failure that shows the status only', async () => {
    const rx = await receiver('127.0.0.1', (_q, r) => {
      r.statusMessage = 'SECRET reason phrase';
      r.writeHead(500, { 'x-debug': 'SECRET' }).end('SECRET stack trace');
    });
    const t = createWebhookTransport({ allowLoopback: true });
    const out = await t.send(`${rx.base}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status: 500, error: 'http status 500', address: '127.0.0.1' });
    expectNoLeak(out);
  });

  it('times out a receiver that never answers', async () => {
    const rx = await receiver('127.0.0.1', () => undefined);
    const t = createWebhookTransport({ allowLoopback: true, timeoutMs: 300 });
    const out = await t.send(`${rx.base}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status: null, error: 'timeout', address: '127.0.0.1' });
    expect(out.latencyMs).toBeGreaterThanOrEqual(290);
    expect(out.latencyMs).toBeLessThan(3_000);
    await expect.poll(() => rx.closedSockets).toBe(1);
  });

  it('times out a receiver that sends headers and then stalls the body', async () => {
    const rx = await receiver('127.0.0.1', (_q, r) => {
      r.writeHead(200, { 'content-length': '100' });
      r.write('partial');
    });
    const t = createWebhookTransport({ allowLoopback: true, timeoutMs: 300 });
    const out = await t.send(`${rx.base}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status: 200, error: 'timeout' });
  });

  it('a body cut off mid-way is a failure, even after a 2xx status', async () => {
    const rx = await receiver('127.0.0.1', (_q, r) => {
      r.writeHead(200, { 'content-length': '100' });
      r.write('partial', () => r.socket?.destroy());
    });
    const t = createWebhookTransport({ allowLoopback: true });
    const out = await t.send(`${rx.base}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status: 200, error: 'connection reset' });
  });

  it('counts DNS in the deadline', async () => {
    const t = createWebhookTransport({ allowLoopback: true, timeoutMs: 300, resolve: () => new Promise(() => undefined) });
    const out = await t.send('http://slow-dns.example.test/', secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status: null, error: 'timeout' });
    expect(out.latencyMs).toBeGreaterThanOrEqual(290);
    expect(attempts).toEqual([]);
  });

  it('caps an endless response body and drops the connection', async () => {
    let written = 0;
    const rx = await receiver('127.0.0.1', (_q, r) => {
      r.writeHead(200);
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const pump = (): void => {
        while (!r.destroyed && written < 1024 * 1024 * 1024) {
          written += chunk.length;
          if (!r.write(chunk)) return void r.once('drain', pump);
        }
      };
      pump();
    });
    const t = createWebhookTransport({ allowLoopback: true, timeoutMs: 10_000, maxResponseBytes: 256 * 1024 });
    const heapBefore = process.memoryUsage().heapUsed;
    const out = await t.send(`${rx.base}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: true, status: 200, error: null });
    expect(out.latencyMs).toBeLessThan(5_000);
    await expect.poll(() => rx.closedSockets).toBe(1);
    // The receiver could push only what socket buffers hold before the client hung up.
    expect(written).toBeLessThan(64 * 1024 * 1024);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(32 * 1024 * 1024);
  });

  it('reports a refused connection', async () => {
    const port = await closedPort();
    const t = createWebhookTransport({ allowLoopback: true });
    const out = await t.send(`http://127.0.0.1:${port}/`, secretHeaders, body);
    expect(out).toMatchObject({ ok: false, status: null, error: 'connection refused', address: null });
  });

  it('reports a non-HTTP answer without echoing it', async () => {
    const raw = net.createServer((socket) => {
      socket.on('data', () => socket.end('SECRET-BANNER not http at all\r\n\r\n'));
    });
    await new Promise<void>((done) => raw.listen(0, '127.0.0.1', () => done()));
    try {
      const { port } = raw.address() as net.AddressInfo;
      const t = createWebhookTransport({ allowLoopback: true });
      const out = await t.send(`http://127.0.0.1:${port}/`, secretHeaders, body);
      expect(out).toMatchObject({ ok: false, status: null, error: 'invalid http response' });
      expectNoLeak(out);
    } finally {
      await new Promise<void>((done) => raw.close(() => done()));
    }
  });
});

describe('TLS', () => {
  let dir = '';
  let tls: { key: Buffer; cert: Buffer } | null = null;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'palisade-webhook-tls-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=hooks.example.test',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
      tls = { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
    } catch {
      tls = null;
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('sends the original hostname as SNI to the pinned address and verifies the certificate', async (ctx) => {
    if (!tls) ctx.skip('openssl is not available to make a test certificate');
    const seen: string[] = [];
    // SNI is read from the ClientHello before the (untrusted) certificate makes the client hang up.
    const sniServer = https.createServer({
      ...(tls as { key: Buffer; cert: Buffer }),
      SNICallback: (name, cb) => {
        seen.push(name);
        cb(null);
      },
    });
    sniServer.on('tlsClientError', () => undefined);
    await new Promise<void>((done) => sniServer.listen(0, '127.0.0.1', () => done()));
    try {
      const { port } = sniServer.address() as net.AddressInfo;
      const t = createWebhookTransport({ allowLoopback: true, resolve: async () => [v4('127.0.0.1')] });
      const out = await t.send(`https://hooks.example.test:${port}/`, secretHeaders, body);
      expect(out).toMatchObject({ ok: false, status: null, error: 'tls error', address: '127.0.0.1' });
      expect(seen).toEqual(['hooks.example.test']);
    } finally {
      await new Promise<void>((done) => sniServer.close(() => done()));
    }
  });
});

describe('programmer errors throw', () => {
  const t = createWebhookTransport({ allowLoopback: true });
  it.each(['Host', 'content-length', 'Transfer-Encoding', 'connection', 'Content-Type', 'user-agent'])('refuses a caller-set %s header', async (name) => {
    await expect(t.send('http://127.0.0.1:9/', { [name]: 'x' }, body)).rejects.toThrow(InvariantError);
    expect(attempts).toEqual([]);
  });

  it('refuses a header value that would split the request, without quoting it', async () => {
    const err = await t.send('http://127.0.0.1:9/', { 'webhook-signature': 'v1,SECRET\r\nx-injected: 1' }, body).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvariantError);
    expect(String((err as Error).message)).not.toContain('SECRET');
  });

  it('refuses nonsense options', () => {
    expect(() => createWebhookTransport({ allowLoopback: false, timeoutMs: 0 })).toThrow(InvariantError);
    expect(() => createWebhookTransport({ allowLoopback: false, maxResponseBytes: -1 })).toThrow(InvariantError);
  });
});
