/**
 * Bad input, fuzzed over the live route table: bodies, query strings, path parameters, headers,
 * cookies and tokens, with a valid owner session and without. Whatever arrives, the answer is a
 * clear 4xx (problem+json with type, title, status, code and requestId) or a success, never a
 * 5xx, and a refused mutation leaves every touched table exactly as it was.
 */
import fc from 'fast-check';
import type { LightMyRequestResponse } from 'fastify';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnyRoute } from '../../src/http/route.js';
import type { Engine } from '../../src/db/database.js';
import { ERROR_CODES } from '../../src/kernel/errors.js';
import { isUuid } from '../../src/kernel/ids.js';
import { ALL_PERMISSIONS, BUILTIN_ROLES } from '../../src/kernel/permissions.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';

/** The full budget runs on one engine (PostgreSQL when present); the other gets a smaller sample. */
const PRIMARY: Engine = ENGINES.includes('postgres') ? 'postgres' : 'pglite';
const FULL = { body: 16, plausible: 16, query: 8, path: 10, headers: 8, cookies: 8, tokens: 16 };
const SMALL = { body: 4, plausible: 4, query: 2, path: 3, headers: 2, cookies: 2, tokens: 4 };
/** FUZZ_SCALE=10 turns this into a longer soak; the default keeps the file under a minute. */
const SCALE = Math.max(1, Number(process.env.FUZZ_SCALE ?? 1) || 1);
const scaled = (runs: typeof FULL) => Object.fromEntries(Object.entries(runs).map(([k, n]) => [k, n * SCALE])) as typeof FULL;
const PLANS = ENGINES.map((engine) => ({ engine, runs: scaled(engine === PRIMARY ? FULL : SMALL) }));
/** Generous per-test limit: the run counts bound the work, a loaded machine only slows it. */
const TIMEOUT = 180_000 * SCALE;

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
const STATE_CHANGING = new Set<string>(['POST', 'PUT', 'PATCH', 'DELETE']);
const WITH_BODY = new Set<string>(['POST', 'PUT', 'PATCH']);

// ---------------------------------------------------------------------------------------------
// Arbitraries
// ---------------------------------------------------------------------------------------------

/** Characters a real HTTP client can put in a header value (visible ASCII, space, obs-text). */
const headerChar = fc.integer({ min: 0x20, max: 0xff }).filter((c) => c !== 0x7f).map((c) => String.fromCharCode(c));
const headerText = (maxLength: number) => fc.string({ unit: headerChar, maxLength });
const b64url = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 43, maxLength: 43 });

const nastyStrings = fc.constantFrom(
  '', ' ', '\u0000', 'a\u0000b', '\u0007\u001b[31m', '\ud800', '\udfff\ud800', '\u202eevil', '\ufeff', '\u200b',
  '../../../../etc/passwd', '..\\..\\windows', '%00', '%zz', "'; drop table users; --", '" or 1=1 --', '<script>alert(1)</script>',
  '${jndi:ldap://x}', '{{7*7}}', 'null', 'undefined', 'true', '0', '-1', '1e309', 'NaN', '__proto__', 'constructor',
  'Ω≈ç√∫', '𝕳𝖊𝖑𝖑𝖔', '👩‍👩‍👧‍👦'.repeat(30), 'ß'.repeat(300), 'a'.repeat(255), 'owner@acme.test', 'OWNER@ACME.TEST ',
  '00000000-0000-0000-0000-000000000000', 'pal_pwr_', 'pal_inv_', 'projects:read', 'owner', 'custom',
);

const weirdString = fc.oneof(
  { weight: 3, arbitrary: nastyStrings },
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  // Huge strings: some under the 64 KiB body limit, some over it.
  { weight: 1, arbitrary: fc.integer({ min: 500, max: 70_000 }).map((n) => 'x'.repeat(n)) },
);

const deepJson = fc.integer({ min: 10, max: 20_000 }).chain((n) =>
  fc.constantFrom('['.repeat(n) + ']'.repeat(n), '{"a":'.repeat(n) + 'null' + '}'.repeat(n), '['.repeat(n)),
);

const weirdValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: weirdString },
  { weight: 2, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.constantFrom(0, -0, 1e308, -1e308, 2 ** 53 + 1, 1.5, -1)) },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 1, arbitrary: fc.array(weirdString, { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.dictionary(weirdString, weirdString, { maxKeys: 3 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
);

/** Percent-encodes any string; lone surrogates (which a client sends as U+FFFD) first become U+FFFD. */
function enc(s: string): string {
  return encodeURIComponent(Buffer.from(s, 'utf8').toString('utf8'));
}

function bodyKeys(route: AnyRoute): string[] {
  const schema = route.schema.body as z.ZodType | undefined;
  return schema instanceof z.ZodObject ? Object.keys(schema.shape as Record<string, unknown>) : [];
}

function queryKeys(route: AnyRoute): string[] {
  const schema = route.schema.query as z.ZodType | undefined;
  return schema instanceof z.ZodObject ? Object.keys(schema.shape as Record<string, unknown>) : [];
}

function paramNames(route: AnyRoute): string[] {
  return [...route.url.matchAll(/:([A-Za-z]+)/g)].map((m) => m[1] as string);
}

/** A raw request body and the content type it goes with. */
interface RawBody {
  payload: string | undefined;
  contentType: string | undefined;
}

const json = (v: unknown): RawBody => ({ payload: JSON.stringify(v) ?? undefined, contentType: 'application/json' });

/** Bodies for a route: anything, JSON values, the route's own keys with wrong types, raw garbage. */
function bodyArb(route: AnyRoute): fc.Arbitrary<RawBody> {
  const keys = bodyKeys(route);
  const keyed = keys.length > 0
    ? [
        fc.record(Object.fromEntries(keys.map((k) => [k, weirdValue])), { requiredKeys: [] }).map(json),
        // The right keys plus one the schema does not know.
        fc.tuple(fc.record(Object.fromEntries(keys.map((k) => [k, weirdString])), { requiredKeys: [] }), weirdString, weirdValue)
          .map(([o, k, v]) => json({ ...o, [k]: v })),
      ]
    : [];
  return fc.oneof(
    fc.anything({ maxDepth: 4 }).map(json),
    fc.jsonValue({ maxDepth: 6 }).map(json),
    fc.json({ maxDepth: 4 }).map((payload) => ({ payload, contentType: 'application/json' })),
    fc.string({ maxLength: 60 }).map((payload) => ({ payload, contentType: 'application/json' })),
    deepJson.map((payload) => ({ payload, contentType: 'application/json' })),
    fc.constantFrom(
      '{"__proto__":{"admin":true}}', '{"constructor":{"prototype":{"admin":true}}}', '{"a":1,"a":2}', '{', '}', 'nul', '"',
      '\u0000', '\ufeff{}', '{"name":"x"}garbage', '[]', '""', '0', 'true',
    ).map((payload) => ({ payload, contentType: 'application/json' })),
    ...keyed,
  );
}

/** Ids of real rows the plausible bodies point at (or miss on purpose). */
interface Known {
  emails: string[];
  projects: string[];
  foreignProject: string;
  customRole: string;
}

/**
 * Values shaped like what each body key expects — valid, nearly valid, or colliding with real
 * rows — so that requests get past the schemas into the services' own rules, where a refusal
 * after a first write would show up as a partial write.
 */
function plausibleValue(key: string, known: Known): fc.Arbitrary<unknown> {
  const strongPassword = b64url.map((s) => `Pw-${s.slice(0, 20)}`);
  switch (key) {
    case 'email':
      return fc.oneof(fc.emailAddress(), fc.constantFrom(...known.emails), fc.constantFrom(...known.emails).map((e) => ` ${e.toUpperCase()} `), weirdString);
    case 'password':
    case 'currentPassword':
    case 'newPassword':
      return fc.oneof(strongPassword, fc.constantFrom('password', 'password123!', 'aaaaaaaaaaaaaaaa', '', 'x'.repeat(1025), 'ab'.repeat(64)), weirdString);
    case 'name':
    case 'orgName':
      return fc.oneof(fc.string({ minLength: 1, maxLength: 100 }), nastyStrings, fc.constant('n'.repeat(101)));
    case 'slug':
    case 'orgSlug':
      return fc.oneof(fc.constantFrom('acme', 'globex', 'ab', 'a-b', '-ab', 'ab-', 'A-B-C'), fc.stringMatching(/^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$/));
    case 'role':
      return fc.constantFrom(...BUILTIN_ROLES, 'custom', 'superuser', 'OWNER');
    case 'customRoleId':
      return fc.oneof(fc.constant(known.customRole), fc.uuid(), fc.constant(null), fc.constant('x'));
    case 'restricted':
      return fc.oneof(fc.boolean(), fc.constant('true'));
    case 'projectIds':
      return fc.array(fc.oneof(fc.constantFrom(...known.projects, known.foreignProject), fc.uuid()), { maxLength: 4 });
    case 'permissions':
      return fc.array(fc.constantFrom(...ALL_PERMISSIONS, 'superpower', ''), { maxLength: 8 });
    case 'description':
      return fc.string({ maxLength: 600 });
    case 'sessionIdleMinutes':
    case 'sessionAbsoluteHours':
      return fc.oneof(fc.integer({ min: -5, max: 2000 }), fc.constant(null), fc.double());
    case 'kind':
      return fc.oneof(fc.stringMatching(/^[a-z][a-z0-9_-]{0,31}$/), fc.constantFrom('Host', '', '_x'));
    case 'token':
      return fc.oneof(b64url.map((t) => `pal_pwr_${t}`), fc.tuple(fc.uuid(), fc.uuid(), b64url).map(([o, i, t]) => `pal_inv_${o}.${i}.${t}`));
    default:
      return weirdValue;
  }
}

function plausibleBody(route: AnyRoute, known: Known): fc.Arbitrary<Record<string, unknown>> {
  const model = Object.fromEntries(bodyKeys(route).map((k) => [k, plausibleValue(k, known)]));
  return fc.oneof({ weight: 3, arbitrary: fc.record(model) }, { weight: 1, arbitrary: fc.record(model, { requiredKeys: [] }) });
}

const segmentArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 2, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.uuid().map((u) => u.toUpperCase()) },
  { weight: 1, arbitrary: fc.uuid().map((u) => `${u}x`) },
  { weight: 1, arbitrary: fc.uuid().map((u) => u.replace(/-/g, '')) },
  { weight: 3, arbitrary: fc.string({ minLength: 1, maxLength: 40 }).map(enc) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 }).map(enc) },
  { weight: 1, arbitrary: fc.integer({ min: 150, max: 3000 }).map((n) => 'a'.repeat(n)) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '..', '.', '..%2F..%2F', '%2e%2e%2f%2e%2e%2f', '..%5c..%5c', '%00', '%ZZ', '%', '%E0%A4%A', '%C0%AF', '%252e%252e',
      'null', 'undefined', '0', '-1', '00000000-0000-0000-0000-000000000000', 'ffffffff-ffff-ffff-ffff-ffffffffffff', '%F0%9F%98%80',
      '%E2%80%AE', enc("' or 1=1 --"), '*', '%20', '~', '$', 'me',
    ),
  },
);

const CONTENT_TYPES = [
  'application/json', 'application/json; charset=utf-8', 'application/json; charset=UTF-16', 'application/json; charset=utf-99',
  'application/json; charset="', 'APPLICATION/JSON', 'application/json;;', 'application/vnd.api+json', 'application/json-patch+json',
  'text/plain', 'text/plain; charset=utf-8', 'text/html', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x',
  'application/xml', 'application/octet-stream', 'garbage', ';', '*/*', 'application/', '/json',
];

const FOREIGN_ORIGINS = ['https://evil.test', 'null', 'garbage', 'http://palisade.test', 'https://palisade.test.evil.test'];

// ---------------------------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------------------------

interface Sent {
  route: AnyRoute;
  method: string;
  url: string;
  headers: Record<string, string>;
  payload: string | undefined;
}

function describeSent(s: Sent): string {
  const body = s.payload === undefined ? '' : ` body=${JSON.stringify(s.payload.slice(0, 300))}${s.payload.length > 300 ? `…(${s.payload.length})` : ''}`;
  const headers = Object.fromEntries(Object.entries(s.headers).map(([k, v]) => [k, v.length > 120 ? `${v.slice(0, 120)}…(${v.length})` : v]));
  return `${s.route.method} ${s.route.url} → ${s.method} ${s.url.slice(0, 300)} headers=${JSON.stringify(headers)}${body}`;
}

/** Never a 5xx; every 4xx is an RFC 9457 problem whose fields agree with the HTTP status. */
function expectSane(res: LightMyRequestResponse, sent: Sent): void {
  const where = describeSent(sent);
  expect(res.statusCode, `${where}\n→ ${res.statusCode} ${res.body.slice(0, 400)}`).toBeLessThan(500);
  if (res.statusCode < 400) return;
  expect(res.headers['content-type'], where).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(body, where).toMatchObject({ status: res.statusCode });
  expect(typeof body.type, where).toBe('string');
  expect(body.type, where).toBe(`https://palisade.dev/problems/${String(body.code)}`);
  expect(typeof body.title, where).toBe('string');
  expect((body.title as string).length, where).toBeGreaterThan(0);
  expect(ERROR_CODES, where).toContain(body.code);
  expect(typeof body.requestId, where).toBe('string');
  expect((body.requestId as string).length, where).toBeGreaterThan(0);
}

function problemCode(res: LightMyRequestResponse): string | null {
  if (!String(res.headers['content-type'] ?? '').startsWith('application/problem+json')) return null;
  return String((res.json() as { code?: unknown }).code);
}

/** Row counts and content digests of every table a mutation can touch. */
const FINGERPRINT = `
  select
    (select count(*)::int from projects) as projects,
    (select count(*)::int from custom_roles) as custom_roles,
    (select count(*)::int from invitations) as invitations,
    (select count(*)::int from memberships) as memberships,
    (select count(*)::int from assets) as assets,
    (select count(*)::int from audit_events where result = 'success') as audit_success,
    (select count(*)::int from users) as users,
    (select count(*)::int from organizations) as organizations,
    (select count(*)::int from project_access) as project_access,
    (select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from projects t) as projects_digest,
    (select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from custom_roles t) as custom_roles_digest,
    (select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from invitations t) as invitations_digest,
    (select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from memberships t) as memberships_digest,
    (select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from organizations t) as organizations_digest,
    (select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from org_settings t) as org_settings_digest,
    (select md5(coalesce(string_agg(id::text || email_sealed || name_sealed || email_index || coalesce(email_domain_index, '') || coalesce(password_hash, ''), '|' order by id), '')) from users) as users_digest`;

// ---------------------------------------------------------------------------------------------

describe.each(PLANS)('bad input on $engine', ({ engine, runs }) => {
  let h: TestApp;
  let routes: readonly AnyRoute[];
  let acme: string;
  let globex: string;
  let project: string;
  let ownerEmail: string;
  let stats: { requests: number; refusedMutations: number; byStatus: Map<number, number> };

  beforeAll(async () => {
    h = await createTestApp(engine);
    routes = h.built.routes;
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    project = (h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0] as { id: string }).id;
    ownerEmail = h.user('acme', 'owner').email;
    stats = { requests: 0, refusedMutations: 0, byStatus: new Map() };
  });
  afterAll(async () => {
    if (stats) {
      const statuses = [...stats.byStatus.entries()].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(' ');
      process.stdout.write(`[fuzz ${engine}] ${stats.requests} requests over ${routes?.length ?? 0} routes, ${stats.refusedMutations} refused mutations checked for partial writes; statuses ${statuses}\n`);
    }
    await h?.close();
  });

  async function fingerprint(): Promise<Record<string, unknown>> {
    const rows = await h.t.owner.query<Record<string, unknown>>(FINGERPRINT);
    return rows[0] as Record<string, unknown>;
  }

  /** Sends one request, checks the invariants and, for a refused mutation, that nothing was written. */
  async function send(sent: Sent): Promise<LightMyRequestResponse> {
    const mutation = STATE_CHANGING.has(sent.method);
    const before = mutation ? await fingerprint() : null;
    const res = await h.built.app.inject({
      method: sent.method as Method,
      url: sent.url,
      headers: sent.headers,
      ...(sent.payload !== undefined ? { payload: sent.payload } : {}),
    });
    stats.requests++;
    stats.byStatus.set(res.statusCode, (stats.byStatus.get(res.statusCode) ?? 0) + 1);
    expectSane(res, sent);
    if (before && res.statusCode >= 400) {
      stats.refusedMutations++;
      expect(await fingerprint(), `partial write after ${res.statusCode}: ${describeSent(sent)}`).toEqual(before);
    }
    return res;
  }

  /** Valid path parameters: acme (where the owner is a member) and its first project; other ids random. */
  function validParams(route: AnyRoute, random: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const p of paramNames(route)) {
      if (p === 'orgId') out[p] = acme;
      // Destructive routes without a body would succeed on the real project: aim them at nothing.
      else if (p === 'projectId') out[p] = route.method === 'GET' || route.schema.body ? project : random;
      else out[p] = random;
    }
    return out;
  }

  function urlFor(route: AnyRoute, params: Record<string, string>, query = ''): string {
    return route.url.replace(/:([A-Za-z]+)/g, (_m, name: string) => params[name] ?? 'missing') + query;
  }

  async function headersFor(withSession: boolean, extra: Record<string, string> = {}): Promise<Record<string, string>> {
    const headers: Record<string, string> = { origin: ORIGIN, ...extra };
    if (withSession) headers.cookie = await h.cookieFor(ownerEmail);
    return headers;
  }

  /** Runs `property` once per route of the live table, naming the route when it fails. */
  async function forEveryRoute<Ts extends [unknown, ...unknown[]]>(numRuns: number, property: (route: AnyRoute) => fc.IAsyncProperty<Ts>) {
    expect(routes.length).toBeGreaterThan(30);
    for (const route of routes) {
      await fc.assert(property(route), { numRuns, endOnFailure: true });
    }
  }

  it('fuzzed JSON bodies on every route, with and without a session', async () => {
    await forEveryRoute(runs.body, (route) =>
      fc.asyncProperty(bodyArb(route), fc.boolean(), fc.uuid(), async (body, withSession, random) => {
        const headers = await headersFor(withSession, body.contentType ? { 'content-type': body.contentType } : {});
        const res = await send({ route, method: route.method, url: urlFor(route, validParams(route, random)), headers, payload: body.payload });
        if (!withSession && route.auth.mode === 'session') {
          // Unauthenticated callers learn nothing beyond "sign in" (or that the body is unreadable).
          expect([400, 401, 413]).toContain(res.statusCode);
          if (res.statusCode === 400) expect(problemCode(res)).toBe('malformed_request');
        }
      }),
    );
  }, TIMEOUT);

  it('plausible bodies reach the services, and whatever they refuse leaves no trace', async () => {
    const owner = await h.cookieFor(ownerEmail);
    const created = await h.built.app.inject({
      method: 'POST', url: `/api/orgs/${acme}/roles`, headers: { cookie: owner, origin: ORIGIN },
      payload: { name: 'Fuzz role', permissions: ['projects:read', 'assets:read'] },
    });
    expect(created.statusCode, created.body).toBe(201);
    const acmeOrg = h.demo.orgs.find((o) => o.slug === 'acme');
    const known: Known = {
      emails: h.demo.logins.map((l) => l.email),
      projects: acmeOrg?.projects.map((p) => p.id) ?? [],
      foreignProject: h.demo.orgs.find((o) => o.slug === 'globex')?.projects[0]?.id ?? '',
      customRole: String((created.json() as { id: string }).id),
    };
    const members = await h.t.owner.query<{ user_id: string }>('select user_id::text from memberships where org_id = $1 order by user_id', [acme]);
    const memberIds = members.map((m) => m.user_id);
    expect(memberIds.length).toBe(6);
    const withBody = routes.filter((r) => bodyKeys(r).length > 0);
    expect(withBody.length).toBeGreaterThan(12);
    for (const route of withBody) {
      const params = fc.record({
        orgId: fc.oneof({ weight: 5, arbitrary: fc.constant(acme) }, { weight: 1, arbitrary: fc.constant(globex) }),
        projectId: fc.constantFrom(...known.projects),
        userId: fc.oneof(fc.constantFrom(...memberIds), fc.uuid()),
        roleId: fc.oneof(fc.constant(known.customRole), fc.uuid()),
      });
      await fc.assert(
        fc.asyncProperty(plausibleBody(route, known), params, async (body, p) => {
          const headers = await headersFor(route.auth.mode === 'session', { 'content-type': 'application/json' });
          const res = await send({ route, method: route.method, url: urlFor(route, p), headers, payload: JSON.stringify(body) });
          // A member of acme addressing globex learns nothing but "not found" (a body refused for
          // its shape or its size is refused before the org is looked at, and says nothing of it).
          // (Key routes get no key here: 401 before any org is looked at.)
          if (route.url.includes(':orgId') && p.orgId === globex && ![400, 413].includes(res.statusCode)) {
            expect(res.statusCode).toBe(route.auth.mode === 'key' ? 401 : 404);
          }
        }),
        { numRuns: runs.plausible, endOnFailure: true },
      );
    }
  }, TIMEOUT);

  it('fuzzed query strings on every route', async () => {
    await forEveryRoute(runs.query, (route) => {
      const key = fc.oneof(
        fc.constantFrom(...queryKeys(route), 'limit', 'before', 'from', 'to', '__proto__', 'constructor', 'a[b]', 'a[]', ''),
        fc.string({ maxLength: 20 }),
      );
      const value = fc.oneof(
        weirdString.filter((s) => s.length < 4000),
        fc.integer().map(String),
        fc.double().map(String),
        fc.constantFrom('-1', '0', '1e400', '9007199254740993', '9223372036854775808', '-200000-01-01', '275760-09-14', '2024-13-45', 'Infinity'),
      );
      const pair = fc.tuple(key, value, fc.boolean()).map(([k, v, encoded]) =>
        encoded ? `${enc(k)}=${enc(v)}` : `${enc(k)}=${enc(v).replace(/%25/g, '%')}`,
      );
      const garbage = fc.constantFrom('', '&', '&&&', '%', '%zz', '%E0%A4%A', '=', '==', ';', '+', '%00', 'a=1&a=2&a=3');
      const query = fc.tuple(fc.array(pair, { maxLength: 6 }), garbage).map(([pairs, g]) => `?${[...pairs, g].join('&')}`);
      return fc.asyncProperty(query, fc.boolean(), fc.uuid(), async (q, withSession, random) => {
        const headers = await headersFor(withSession, WITH_BODY.has(route.method) ? { 'content-type': 'application/json' } : {});
        await send({
          route, method: route.method, url: urlFor(route, validParams(route, random), q), headers,
          payload: WITH_BODY.has(route.method) ? '{}' : undefined,
        });
      });
    });
  }, TIMEOUT);

  it('malformed path parameters never reach a handler as valid ids', async () => {
    await forEveryRoute(runs.path, (route) => {
      const names = paramNames(route);
      const params = fc.tuple(...names.map(() => segmentArb)).map((values) => Object.fromEntries(names.map((n, i) => [n, values[i] as string])));
      // Routes without parameters get a garbage segment appended (the not-found path).
      const suffix = names.length === 0 ? segmentArb.map((s) => `/${s}`) : fc.constant('');
      return fc.asyncProperty(params, suffix, fc.boolean(), async (p, extra, withSession) => {
        const headers = await headersFor(withSession, WITH_BODY.has(route.method) ? { 'content-type': 'application/json' } : {});
        const res = await send({
          route, method: route.method, url: urlFor(route, p) + extra, headers, payload: WITH_BODY.has(route.method) ? '{}' : undefined,
        });
        // A path parameter that is not a canonical uuid never names anything.
        if (names.some((n) => !isUuid(decodeURIComponentSafe(p[n] ?? '')))) expect(res.statusCode).toBeGreaterThanOrEqual(400);
      });
    });
  }, TIMEOUT);

  it('weird headers and content types on every route', async () => {
    await forEveryRoute(runs.headers, (route) => {
      const extra = fc.record(
        {
          'user-agent': fc.oneof(headerText(80), fc.integer({ min: 1000, max: 16_000 }).map((n) => 'U'.repeat(n))),
          'x-forwarded-for': fc.oneof(fc.ipV4(), fc.ipV6(), headerText(60)),
          accept: fc.constantFrom('*/*', 'application/xml', 'text/html', ';;', 'application/problem+json', ''),
          'accept-language': headerText(40),
          'x-request-id': headerText(60),
          authorization: fc.oneof(headerText(80), b64url.map((s) => `Bearer ${s}`)),
          referer: fc.constantFrom(`${ORIGIN}/app`, 'https://evil.test/x', 'garbage', ''),
        },
        { requiredKeys: [] },
      );
      const origin = fc.oneof({ weight: 3, arbitrary: fc.constant(ORIGIN) }, { weight: 1, arbitrary: fc.constantFrom(...FOREIGN_ORIGINS) });
      const payload = fc.oneof(fc.constant('{}'), route.example ? fc.constant(JSON.stringify(route.example())) : fc.constant('{"name":"x"}'), fc.string({ maxLength: 30 }));
      return fc.asyncProperty(
        fc.constantFrom(...CONTENT_TYPES), extra, origin, payload, fc.boolean(), fc.uuid(),
        async (contentType, headersExtra, org, body, withSession, random) => {
          const headers = await headersFor(withSession, { ...headersExtra, 'content-type': contentType, origin: org });
          const res = await send({ route, method: route.method, url: urlFor(route, validParams(route, random)), headers, payload: body });
          if (STATE_CHANGING.has(route.method) && org !== ORIGIN && route.auth.mode !== 'key' && !route.crossSiteForm) {
            // CSRF: a foreign or unreadable Origin is refused before anything else (key routes
            // read no cookie, so there is nothing for a cross-site request to ride on; a declared
            // cross-site form, the SAML ACS, is posted by the IdP's page by design).
            expect(res.statusCode).toBe(403);
            expect(problemCode(res)).toBe('csrf_rejected');
          }
        },
      );
    });
  }, TIMEOUT);

  it('garbage, tampered and oversized cookies and tokens never authenticate', async () => {
    const cookieName = h.built.cookie.name;
    const real = (await h.cookieFor(ownerEmail)).slice(cookieName.length + 1);
    const flip = (s: string, i: number) => `${s.slice(0, i)}${s[i] === 'A' ? 'B' : 'A'}${s.slice(i + 1)}`;
    const cookieArb = fc.oneof(
      headerText(200),
      headerText(200).map((v) => `${cookieName}=${v}`),
      fc.tuple(b64url, b64url).map(([a, b]) => `${cookieName}=${a}.${b}`),
      fc.integer({ min: 0, max: real.length - 1 }).map((i) => `${cookieName}=${flip(real, i)}`),
      fc.constantFrom(
        `${cookieName}=${real}x`, `${cookieName}=x${real}`, `${cookieName}=${real.slice(0, 43)}`, `${cookieName}=${real.slice(0, 43)}.`,
        `${cookieName}=${real.replace('.', '')}`, `${cookieName}=${real.slice(44)}.${real.slice(0, 43)}`, `${cookieName}=%E0%A4%A`,
        `${cookieName}="${real}`, `${cookieName}=`, `${cookieName}`, `;;;;`, `=`, `${cookieName}=null`, `palisade_session=${real}`,
        `${cookieName.toLowerCase()}=${real}`, `${cookieName}=${encodeURIComponent('\u0000')}`,
      ),
      fc.integer({ min: 4096, max: 32_000 }).map((n) => `${cookieName}=${'A'.repeat(n)}`),
      fc.tuple(headerText(40), headerText(40)).map(([a, b]) => `a=${a}; ${cookieName}=${b}; ${cookieName}=${a}`),
    );
    const authArb = fc.option(fc.oneof(b64url.map((s) => `Bearer pal_sk_${s}`), headerText(100), fc.constant(`Bearer ${real}`)), { nil: undefined });
    await forEveryRoute(runs.cookies, (route) =>
      fc.asyncProperty(cookieArb, authArb, fc.uuid(), async (cookie, authorization, random) => {
        const headers: Record<string, string> = { origin: ORIGIN, cookie };
        if (authorization !== undefined) headers.authorization = authorization;
        if (WITH_BODY.has(route.method)) headers['content-type'] = 'application/json';
        const payload = WITH_BODY.has(route.method) ? JSON.stringify(route.example?.() ?? {}) : undefined;
        const res = await send({ route, method: route.method, url: urlFor(route, validParams(route, random)), headers, payload });
        if (route.auth.mode === 'session') {
          expect(res.statusCode).toBe(401);
          expect(problemCode(res)).toBe('unauthenticated');
        }
      }),
    );
    // The untampered cookie still works: the 401s above are the tampering, not a broken session.
    const me = await h.built.app.inject({ method: 'GET', url: '/api/me', headers: { cookie: `${cookieName}=${real}` } });
    expect(me.statusCode).toBe(200);
  }, TIMEOUT);

  it('well-formed but forged reset, verification, invitation and sign-in link tokens are refused as token_invalid', async () => {
    const tokenRoutes = routes.filter((r) => bodyKeys(r).includes('token'));
    expect(tokenRoutes.map((r) => `${r.method} ${r.url}`).sort()).toEqual([
      'POST /api/auth/magic-link/verify', 'POST /api/auth/password-reset/confirm', 'POST /api/auth/verify-email', 'POST /api/invitations/accept',
    ]);
    const token = fc.oneof(
      b64url.map((s) => `pal_pwr_${s}`),
      b64url.map((s) => `pal_emv_${s}`),
      b64url.map((s) => `pal_mgl_${s}`),
      fc.tuple(fc.constantFrom(acme, globex), fc.uuid(), b64url).map(([o, i, s]) => `pal_inv_${o}.${i}.${s}`),
      fc.tuple(fc.uuid(), fc.uuid(), b64url).map(([o, i, s]) => `pal_inv_${o}.${i}.${s}`),
      fc.string({ minLength: 1, maxLength: 200 }).filter((s) => s.trim().length > 0),
      b64url,
    );
    for (const route of tokenRoutes) {
      await fc.assert(
        fc.asyncProperty(token, async (t) => {
          const others = Object.fromEntries(bodyKeys(route).filter((k) => k !== 'token').map((k) => [k, 'Fuzz-unguessable-passphrase-7731']));
          const headers = await headersFor(route.auth.mode === 'session', { 'content-type': 'application/json' });
          const res = await send({ route, method: route.method, url: route.url, headers, payload: JSON.stringify({ ...others, token: t }) });
          expect(res.statusCode).toBe(400);
          expect(problemCode(res)).toBe('token_invalid');
        }),
        { numRuns: runs.tokens, endOnFailure: true },
      );
    }
  }, TIMEOUT);
});

function decodeURIComponentSafe(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}
