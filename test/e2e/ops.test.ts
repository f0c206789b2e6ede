/**
 * Operations endpoints: liveness, readiness (and its 503 when the database is gone), the OpenAPI
 * description generated from the live route table, and Prometheus metrics on their own listener.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createMetricsServer } from '../../src/http/metrics-server.js';
import { serve } from '../../src/main.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { ENGINES, PG_ADMIN_URL } from '../support/db.js';
import { freePort } from '../support/redis.js';

interface Operation {
  'x-palisade-auth': string;
  'x-palisade-permission': string;
  'x-palisade-rate-limit': string;
  'x-palisade-audit': string | null;
  security: unknown[];
  parameters: { name: string; in: string; required: boolean }[];
  requestBody?: unknown;
  responses: Record<string, unknown>;
}

interface OpenApiDoc {
  openapi: string;
  info: { title: string; version: string };
  servers: { url: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: { Problem: { required: string[] } } };
}

const METRICS_TOKEN = 'metrics-token-5d1c0a7e9b3f4e2a8c6d1b0f7e3a9c5d';

/** The counter's value for one label set, 0 when it has no sample yet. */
function sample(metrics: string, labels: string): number {
  const line = metrics.split('\n').find((l) => l.startsWith(`palisade_http_requests_total{${labels}} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe.each(ENGINES)('operations endpoints on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  it('GET /healthz answers 200 without credentials, with security headers', async () => {
    const res = await h.built.app.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok' });
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['content-security-policy']).toContain("default-src 'self'");
  });

  it('GET /readyz answers 200 while the database answers', async () => {
    const res = await h.built.app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(200);
    // The engine is not named to outsiders (it tells which isolation backstop is weaker).
    expect(res.json()).toEqual({ status: 'ready' });
  });

  it('GET /openapi.json is OpenAPI 3.1 and describes every route with its permission', async () => {
    const res = await h.built.app.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const doc = res.json() as OpenApiDoc;
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.title).toBe('Palisade API');
    expect(doc.servers).toEqual([{ url: ORIGIN }]);
    expect(doc.components.schemas.Problem.required).toEqual(['type', 'title', 'status', 'code', 'requestId']);

    const routes = h.built.routes;
    let operations = 0;
    for (const ops of Object.values(doc.paths)) operations += Object.keys(ops).length;
    expect(operations).toBe(routes.length);
    for (const r of routes) {
      const path = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
      const op = doc.paths[path]?.[r.method.toLowerCase()];
      const where = `${r.method} ${r.url}`;
      expect(op, where).toBeDefined();
      if (!op) continue;
      expect(op['x-palisade-permission'], where).toBe(r.permission);
      expect(op['x-palisade-auth'], where).toBe(r.auth.mode);
      expect(op['x-palisade-rate-limit'], where).toBe(r.rateLimit);
      expect(op['x-palisade-audit'], where).toBe('action' in r.audit ? r.audit.action : null);
      expect(op.security, where).toEqual(r.auth.mode === 'public' ? [] : r.auth.mode === 'key' ? [{ apiKey: [] }] : [{ sessionCookie: [] }]);
      const pathParams = [...r.url.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1]);
      expect(op.parameters.filter((p) => p.in === 'path').map((p) => p.name), where).toEqual(pathParams);
      expect(Object.keys(op.responses)[0], where).toBe(String(r.status ?? 200));
      expect(op.requestBody !== undefined, where).toBe(r.schema.body !== undefined || r.upload === true);
      // An upload declares its one multipart file part.
      if (r.upload) expect(Object.keys((op.requestBody as { content: object }).content), where).toEqual(['multipart/form-data']);
    }
  });

  // review R4 finding 8
  it('the API listener does not serve /metrics, whatever the credential', async () => {
    for (const headers of [{}, { authorization: `Bearer ${METRICS_TOKEN}` }]) {
      const res = await h.built.app.inject({ method: 'GET', url: '/metrics', headers });
      expect(res.statusCode).toBe(404);
      expect(res.body).not.toContain('palisade_http_requests_total');
    }
  });

  // review R4 finding 8
  // In full: the metrics listener answers 401 without the token or with a wrong one, in constant
  // time, and never echoes it
  it('the metrics listener answers 401 without the right token, in constant time', async () => {
    const m = await createMetricsServer({ metrics: h.built.metrics, token: METRICS_TOKEN, logger: h.logger });
    try {
      const wrong = [undefined, `Bearer ${METRICS_TOKEN.slice(0, -1)}x`, `Bearer ${METRICS_TOKEN}x`, METRICS_TOKEN, `Basic ${METRICS_TOKEN}`, 'Bearer '];
      for (const authorization of wrong) {
        const res = await m.inject({ method: 'GET', url: '/metrics', headers: authorization ? { authorization } : {} });
        expect(res.statusCode, String(authorization)).toBe(401);
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
        expect(res.headers['www-authenticate']).toBe('Bearer realm="metrics"');
        expect(res.json()).toMatchObject({ code: 'unauthenticated' });
        expect(res.body).not.toContain('palisade_');
        expect(res.body).not.toContain(METRICS_TOKEN.slice(8, 40));
      }
      // Nothing but /metrics lives there, and an unknown path asks for the token first.
      expect((await m.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(401);
      expect((await m.inject({ method: 'GET', url: '/healthz', headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).statusCode).toBe(404);
    } finally {
      await m.close();
    }
  });

  // In full: the metrics listener serves Prometheus text counting the API requests by route and
  // status, with the token
  it('the metrics listener serves Prometheus text by route and status, with the token', async () => {
    const m = await createMetricsServer({ metrics: h.built.metrics, token: METRICS_TOKEN, logger: h.logger });
    const scrape = () => m.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    try {
      const first = await scrape();
      expect(first.statusCode).toBe(200);
      expect(first.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
      expect(first.body).toContain('# TYPE palisade_http_requests_total counter');
      expect(first.body).toContain('# HELP palisade_http_requests_total HTTP requests by route and status');
      expect(first.body).toContain('# TYPE palisade_http_request_duration_seconds histogram');
      const ok = 'method="GET",route="/healthz",status="200"';
      const missing = 'method="GET",route="unmatched",status="404"';
      const okBefore = sample(first.body, ok);
      const missingBefore = sample(first.body, missing);

      for (let i = 0; i < 3; i++) expect((await h.built.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
      expect((await h.built.app.inject({ method: 'GET', url: '/no/such/route' })).statusCode).toBe(404);

      const after = (await scrape()).body;
      expect(sample(after, ok)).toBe(okBefore + 3);
      expect(sample(after, missing)).toBe(missingBefore + 1);
      // Labels are route patterns, never raw urls with ids in them.
      expect(after).not.toContain('/no/such/route');
      // Scrapes are not API requests: they do not count themselves.
      expect(after).not.toContain('route="/metrics"');
    } finally {
      await m.close();
    }
  });

  // In full: a loopback metrics listener without a token (config allows it only there) serves
  // without credentials
  it('a loopback metrics listener without a token serves without credentials', async () => {
    const m = await createMetricsServer({ metrics: h.built.metrics, token: null, logger: h.logger });
    try {
      const res = await m.inject({ method: 'GET', url: '/metrics' });
      expect(res.statusCode).toBe(200);
      expect(res.body).toContain('palisade_http_requests_total');
    } finally {
      await m.close();
    }
  });
});

describe.each(ENGINES)('readiness without a database on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => {
    await h.built.app.close();
    await h.t.owner.close();
    if (h.t.ownerUrl) {
      // The database handle is already closed: drop the test database directly.
      const name = new URL(h.t.ownerUrl).pathname.slice(1);
      const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      await admin.query(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  });

  it('GET /readyz answers 503 problem+json once the database is closed, while /healthz stays 200', async () => {
    expect((await h.built.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
    await h.t.db.close();
    const res = await h.built.app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const body = res.json() as Record<string, unknown>;
    expect(body).toMatchObject({
      type: 'https://palisade.dev/problems/unavailable', title: 'Service unavailable', status: 503, code: 'unavailable',
      detail: 'database unreachable',
    });
    expect(body.requestId).toMatch(/^[A-Za-z0-9_-]{16}$/);
    expect((await h.built.app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
  });
});

describe('palisade serve with METRICS_PORT', () => {
  let stop: (() => Promise<void>) | null = null;
  let api = '';
  let metrics = '';
  const stateDir = mkdtempSync(join(tmpdir(), 'palisade-metrics-'));
  beforeAll(async () => {
    const [port, metricsPort] = [await freePort(), await freePort()];
    const config = loadConfig({
      PALISADE_ENV: 'test', PORT: String(port), METRICS_PORT: String(metricsPort), PALISADE_METRICS_TOKEN: METRICS_TOKEN,
      PALISADE_DATA_DIR: 'memory', PALISADE_STATE_DIR: stateDir, LOG_LEVEL: 'silent',
      PALISADE_KEKS: `k1:${Buffer.alloc(32, 7).toString('base64')}`, PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
    });
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = () => true; // the demo logins banner
    try {
      stop = await serve(config);
    } finally {
      process.stdout.write = write;
    }
    api = `http://127.0.0.1:${port}`;
    metrics = `http://127.0.0.1:${metricsPort}`;
  }, 120_000);
  afterAll(async () => {
    await stop?.();
    rmSync(stateDir, { recursive: true, force: true });
  });

  // review R4 finding 8
  it('serves /metrics on its own port behind the token, and not on the API port', async () => {
    expect((await fetch(`${api}/healthz`)).status).toBe(200);
    expect((await fetch(`${api}/metrics`)).status).toBe(404);
    expect((await fetch(`${api}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).status).toBe(404);
    expect((await fetch(`${metrics}/metrics`)).status).toBe(401);
    expect((await fetch(`${metrics}/metrics`, { headers: { authorization: 'Bearer not-the-token-0123456789abcdef0123' } })).status).toBe(401);
    const ok = await fetch(`${metrics}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('palisade_http_requests_total{method="GET",route="/healthz",status="200"} 1');
  });
});
