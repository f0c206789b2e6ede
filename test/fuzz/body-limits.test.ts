/**
 * Body framing on every state-changing route of the live table: more than 64 KiB is 413,
 * unreadable JSON is 400, a content type the API does not speak is 415 — each as problem+json,
 * before authentication or any handler runs, so nothing is written.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RAW_BODY_LIMIT } from '../../src/http/pipeline.js';
import type { AnyRoute } from '../../src/http/route.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';

const LIMIT = 64 * 1024;
type Method = 'POST' | 'PUT' | 'PATCH' | 'DELETE';

/** A JSON object of exactly `bytes` bytes. */
function jsonOfSize(bytes: number): string {
  const frame = '{"name":""}'.length;
  return `{"name":"${'x'.repeat(bytes - frame)}"}`;
}

function expectProblem(res: LightMyRequestResponse, status: number, code: string, where: string): void {
  expect(res.statusCode, `${where}: ${res.body.slice(0, 200)}`).toBe(status);
  expect(res.headers['content-type'], where).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(body, where).toMatchObject({ type: `https://palisade.dev/problems/${code}`, status, code });
  expect(typeof body.title, where).toBe('string');
  expect(body.requestId, where).toMatch(/^[A-Za-z0-9_-]{16}$/);
}

const COUNTS = `select (select count(*)::int from projects) as projects, (select count(*)::int from custom_roles) as custom_roles,
  (select count(*)::int from invitations) as invitations, (select count(*)::int from memberships) as memberships,
  (select count(*)::int from assets) as assets, (select count(*)::int from users) as users,
  (select count(*)::int from audit_events where result = 'success') as audit_success`;

describe.each(ENGINES)('request bodies on %s', (engine) => {
  let h: TestApp;
  let mutations: AnyRoute[];
  let signed: AnyRoute[];
  let cookie: string;
  let before: Record<string, unknown>;

  beforeAll(async () => {
    h = await createTestApp(engine);
    // Provider-signed routes (`rawBody`) read any body as text, for the signature, under their own limit: see the last test.
    // Uploads (`upload`) read a multipart file under the plan's limits, not JSON: test/files/uploads.test.ts.
    mutations = h.built.routes.filter((r) => r.method !== 'GET' && !r.rawBody && !r.upload);
    signed = h.built.routes.filter((r) => r.rawBody);
    cookie = await h.cookieFor(h.user('acme', 'owner').email);
    before = (await h.t.owner.query<Record<string, unknown>>(COUNTS))[0] as Record<string, unknown>;
  });
  afterAll(async () => h?.close());

  function url(route: AnyRoute): string {
    const project = h.demo.orgs[0]?.projects[0]?.id ?? '';
    return route.url.replace(/:([A-Za-z]+)/g, (_m, p: string) =>
      p === 'orgId' ? h.orgId('acme') : p === 'projectId' ? project : '5f0c7a4e-8b1d-4c2e-9f3a-6d7e8f9a0b1c');
  }

  async function send(route: AnyRoute, withSession: boolean, contentType: string, payload: string): Promise<LightMyRequestResponse> {
    const headers: Record<string, string> = { origin: ORIGIN, 'content-type': contentType };
    if (withSession) headers.cookie = cookie;
    return h.built.app.inject({ method: route.method as Method, url: url(route), headers, payload });
  }

  it('covers every state-changing route of the table', () => {
    expect(mutations.length).toBeGreaterThan(15);
    expect(mutations.every((r) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method))).toBe(true);
  });

  it('answers 413 above 64 KiB and reads a body of exactly 64 KiB', async () => {
    expect(Buffer.byteLength(jsonOfSize(LIMIT + 1))).toBe(LIMIT + 1);
    for (const route of mutations) {
      for (const withSession of [true, false]) {
        const where = `${route.method} ${route.url} session=${withSession}`;
        expectProblem(await send(route, withSession, 'application/json', jsonOfSize(LIMIT + 1)), 413, 'payload_too_large', where);
        expectProblem(await send(route, withSession, 'application/json', jsonOfSize(4 * LIMIT)), 413, 'payload_too_large', where);
      }
      // At the limit the body is read: whatever follows (validation, authentication) is not a 413.
      const atLimit = await send(route, false, 'application/json', jsonOfSize(LIMIT));
      expect(atLimit.statusCode, `${route.method} ${route.url} at the limit`).not.toBe(413);
      expect(atLimit.statusCode).toBeLessThan(500);
    }
  });

  it('answers 400 malformed_request to unreadable JSON', async () => {
    const bodies = ['{"name":', '{name: "x"}', "{'name':'x'}", '{"name":"x",}', '[1,2', 'undefined', '{"__proto__":{"admin":true}}',
      '{"constructor":{"prototype":{"admin":true}}}', '\u0000'];
    for (const route of mutations) {
      for (const [i, payload] of bodies.entries()) {
        const res = await send(route, i % 2 === 0, 'application/json', payload);
        expectProblem(res, 400, 'malformed_request', `${route.method} ${route.url} ${JSON.stringify(payload)}`);
      }
    }
  });

  it('answers 415 to content types the API does not speak', async () => {
    const types: [string, string][] = [
      ['application/x-www-form-urlencoded', 'name=x'],
      ['multipart/form-data; boundary=zz', '--zz\r\nContent-Disposition: form-data; name="name"\r\n\r\nx\r\n--zz--'],
      ['application/xml', '<name>x</name>'],
      ['application/octet-stream', 'x'],
      ['text/html', '<b>x</b>'],
    ];
    for (const route of mutations) {
      for (const [i, [type, payload]] of types.entries()) {
        const res = await send(route, i % 2 === 1, type, payload);
        expectProblem(res, 415, 'unsupported_media_type', `${route.method} ${route.url} ${type}`);
      }
    }
  });

  // In full: provider-signed routes: 413 above their limit; below it, any unsigned body is a 4xx
  // refusal (never parsed, never 415)
  it('provider-signed routes: 413 above their limit, any unsigned body below it a 4xx', async () => {
    expect(signed.length).toBeGreaterThan(0);
    for (const route of signed) {
      const where = `${route.method} ${route.url}`;
      expectProblem(await send(route, false, 'application/json', jsonOfSize(RAW_BODY_LIMIT + 1)), 413, 'payload_too_large', where);
      const bodies: [string, string][] = [['application/json', jsonOfSize(RAW_BODY_LIMIT)], ['application/json', '{"name":'],
        ['application/xml', '<name>x</name>'], ['application/x-www-form-urlencoded', 'name=x'], ['text/html', '<b>x</b>']];
      for (const [type, payload] of bodies) {
        const res = await send(route, false, type, payload);
        expect(res.statusCode, `${where} ${type}`).toBeGreaterThanOrEqual(400);
        expect(res.statusCode, `${where} ${type}`).toBeLessThan(500);
        expect([413, 415], `${where} ${type}`).not.toContain(res.statusCode);
      }
    }
  });

  it('wrote nothing while refusing all of the above', async () => {
    const after = (await h.t.owner.query<Record<string, unknown>>(COUNTS))[0];
    expect(after).toEqual(before);
  });
});
