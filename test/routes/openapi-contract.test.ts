/**
 * The API contract: the OpenAPI document is valid OpenAPI 3.1 (checked by a maintained
 * validator, not by us), lists every problem code a route can answer, and a reply is
 * serialized through the route's declared response schema, so a field nobody declared never leaves.
 */
import { validate } from '@readme/openapi-parser';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { problemCodesOf } from '../../src/http/contract.js';
import { mountRoutes } from '../../src/http/pipeline.js';
import { errorHandler } from '../../src/http/problem.js';
import { defineRoute } from '../../src/http/route.js';
import { statusOf } from '../../src/http/problem.js';
import { createTestApp, type TestApp } from '../support/app.js';

interface Doc {
  paths: Record<string, Record<string, { responses: Record<string, { description: string; content?: Record<string, { schema: unknown }> }> }>>;
}

describe('the OpenAPI document', () => {
  let h: TestApp;
  let doc: Doc;
  beforeAll(async () => {
    h = await createTestApp('pglite');
    doc = (await h.built.app.inject({ method: 'GET', url: '/openapi.json' })).json() as Doc;
  });
  afterAll(async () => h?.close());

  it('validates as OpenAPI 3.1 with @readme/openapi-parser', async () => {
    const result = await validate(structuredClone(doc) as never);
    expect(result.valid, JSON.stringify(result.valid ? [] : result.errors).slice(0, 2000)).toBe(true);
  });

  it('lists, under its HTTP status, every problem code each route can answer', () => {
    for (const r of h.built.routes) {
      const op = doc.paths[r.url.replace(/:([A-Za-z]+)/g, '{$1}')]?.[r.method.toLowerCase()];
      expect(op, `${r.method} ${r.url}`).toBeDefined();
      for (const code of problemCodesOf(r)) {
        expect(op?.responses[String(statusOf(code))]?.description.split(', '), `${r.method} ${r.url} ${code}`).toContain(code);
      }
    }
  });
});

describe('a declared response schema', () => {
  const app = Fastify();
  beforeAll(async () => {
    app.setErrorHandler(errorHandler);
    app.addHook('onRequest', async (request) => {
      request.ctx = { requestId: request.id, ip: '127.0.0.1', audited: [] } as never;
    });
    mountRoutes(app, [
      defineRoute({
        method: 'GET', url: '/contract', summary: 'contract test', tags: [], auth: { mode: 'public', reason: 'test' },
        permission: 'none', rateLimit: 'probe', audit: { none: 'test' },
        schema: { response: z.object({ id: z.string(), createdAt: z.date() }) }, errors: [],
        // A handler that returns a row as the database gave it: the hash must not leave.
        handler: async () => ({ id: 'k1', createdAt: new Date('2026-01-02T03:04:05Z'), tokenHash: 'f00d', sealed: { ct: 'x' } }),
      }),
      defineRoute({
        method: 'GET', url: '/broken', summary: 'contract test', tags: [], auth: { mode: 'public', reason: 'test' },
        permission: 'none', rateLimit: 'probe', audit: { none: 'test' },
        schema: { response: z.object({ id: z.string() }) }, errors: [],
        handler: async () => ({ id: 7 }) as never,
      }),
    ], { auth: {} as never, strictAudit: true, now: () => new Date(), limiter: null });
    await app.ready();
  });
  afterAll(async () => app.close());

  it('drops every field it does not name, such as a hash or a sealed blob', async () => {
    const res = await app.inject({ method: 'GET', url: '/contract' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ id: 'k1', createdAt: '2026-01-02T03:04:05.000Z' });
    expect(res.body).not.toContain('f00d');
  });

  it('refuses, in development and test, a handler that returns a body the schema refuses', async () => {
    const res = await app.inject({ method: 'GET', url: '/broken' });
    expect(res.statusCode).toBe(500);
  });
});
