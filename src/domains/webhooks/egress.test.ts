import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEgressFetch, EgressRefused } from './egress.js';

/** The guarded fetch other domains use for tenant-chosen URLs (OIDC discovery). */
describe('egress fetch', () => {
  let server: http.Server;
  let base: string;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url === '/redirect') res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      else if (req.url === '/big') res.end(Buffer.alloc(64 * 1024, 120));
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ method: req.method, url: req.url }));
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => {
    server.closeAllConnections();
    server.close();
  });

  const refusal = (p: Promise<unknown>) => p.then(() => 'no refusal', (e: unknown) => (e instanceof EgressRefused ? e.reason : `other: ${String(e)}`));

  it('reaches a loopback server only with the development opt-in', async () => {
    const res = await createEgressFetch({ allowLoopback: true })(`${base}/x?y=1`, { method: 'POST', body: 'a=1' });
    expect(await res.json()).toEqual({ method: 'POST', url: '/x?y=1' });
    expect(await refusal(createEgressFetch({ allowLoopback: false })(`${base}/x`))).toBe('destination refused: loopback');
  });

  it('refuses private, link-local and metadata destinations, by address or by what a name resolves to', async () => {
    const egress = createEgressFetch({ allowLoopback: true, resolve: () => Promise.resolve([{ address: '10.1.2.3', family: 4 }]) });
    expect(await refusal(egress('http://10.0.0.1/'))).toBe('destination refused: private');
    expect(await refusal(egress('http://169.254.169.254/'))).toMatch(/destination refused: (metadata|link-local)/);
    expect(await refusal(egress('http://idp.example.com/'))).toBe('destination refused: private');
  });

  it('hands a redirect back instead of following it, and cuts a long answer', async () => {
    const egress = createEgressFetch({ allowLoopback: true, maxResponseBytes: 1024 });
    const res = await egress(`${base}/redirect`);
    expect(res.status).toBe(302);
    expect(await refusal(egress(`${base}/big`))).toBe('response too large');
  });

  // review 2026-12-05 F3: the deadline did not cover the DNS lookup.
  it('counts the DNS lookup inside its deadline', async () => {
    const slow = () => new Promise<{ address: string; family: number }[]>((done) => setTimeout(() => done([{ address: '127.0.0.1', family: 4 }]), 5_000));
    const started = Date.now();
    expect(await refusal(createEgressFetch({ allowLoopback: true, timeoutMs: 300, resolve: slow })('http://slow.example.com/'))).toBe('timeout');
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
