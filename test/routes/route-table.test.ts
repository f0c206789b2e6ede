/**
 * The route table is the security surface: every route states its auth mode, permission,
 * rate-limit policy and audit action, the whole table is snapshotted so that any change to it
 * shows up in review, and a server refuses to start with a route that does not declare it all.
 */
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Metrics } from '../../src/http/metrics.js';
import { mountRoutes, type Authenticators, type PipelineOptions } from '../../src/http/pipeline.js';
import { defineRoute, RATE_LIMIT_POLICIES, type AnyRoute } from '../../src/http/route.js';
import { createHttpServer } from '../../src/http/server.js';
import { ALL_PERMISSIONS } from '../../src/kernel/permissions.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';

const STATE_CHANGING = ['POST', 'PUT', 'PATCH', 'DELETE'];

function auditOf(r: AnyRoute): string {
  return 'action' in r.audit ? r.audit.action : `none (${r.audit.none})`;
}

function stepUpOf(r: AnyRoute): string {
  // owner-recovery: owners keep the route from outside the admin IP allowlist (with a step-up).
  return [r.stepUp ? 'step-up' : '', r.ownerRecovery ? 'owner-recovery' : ''].filter(Boolean).join(' ');
}

/** One line per route: method, url, auth mode, permission, rate-limit policy, audit action. */
function routeTable(routes: readonly AnyRoute[]): string {
  const rows = routes.map((r) => [r.method, r.url, r.auth.mode, r.permission, r.rateLimit, auditOf(r), stepUpOf(r)]);
  const header = ['METHOD', 'URL', 'AUTH', 'PERMISSION', 'RATE LIMIT', 'AUDIT'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] as string).length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] as number)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

describe('the live route table', () => {
  let h: TestApp;
  let routes: readonly AnyRoute[];

  beforeAll(async () => {
    // The table does not depend on the engine: take the quicker one to set up.
    h = await createTestApp(ENGINES.includes('postgres') ? 'postgres' : 'pglite');
    routes = h.built.routes;
  });
  afterAll(async () => h?.close());

  it('matches the reviewed snapshot', () => {
    expect(routes.length).toBeGreaterThan(30);
    expect(`\n${routeTable(routes)}\n`).toMatchSnapshot();
  });

  it('has one definition per method and url', () => {
    const keys = routes.map((r) => `${r.method} ${r.url}`);
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('declares an audit action on every state-changing non-public route', () => {
    const mutations = routes.filter((r) => STATE_CHANGING.includes(r.method) && r.auth.mode !== 'public');
    expect(mutations.length).toBeGreaterThan(15);
    const missing = mutations.filter((r) => !('action' in r.audit)).map((r) => `${r.method} ${r.url}`);
    expect(missing).toEqual([]);
    for (const r of mutations) expect(auditOf(r), `${r.method} ${r.url}`).toMatch(/^[a-z]+(_[a-z]+)*\.[a-z_]+$/);
  });

  it('declares an audit action on every public mutation too (sign-in, registration, resets)', () => {
    const publicMutations = routes.filter((r) => STATE_CHANGING.includes(r.method) && r.auth.mode === 'public');
    expect(publicMutations.map((r) => `${r.method} ${r.url} ${auditOf(r)}`).sort()).toEqual([
      'POST /api/auth/break-glass auth.login_second_factor_pending',
      'POST /api/auth/login auth.login',
      'POST /api/auth/magic-link auth.magic_link_requested',
      'POST /api/auth/magic-link/verify auth.login',
      'POST /api/auth/mfa/passkey auth.login',
      'POST /api/auth/mfa/verify auth.login',
      'POST /api/auth/passkey/login auth.login',
      'POST /api/auth/passkey/options none (a sign-in ceremony changes no account (audited when it names a pending sign-in\u2019s user))',
      'POST /api/auth/password-reset/confirm auth.password_reset',
      'POST /api/auth/password-reset/request auth.password_reset_requested',
      'POST /api/auth/register auth.registered',
      'POST /api/auth/sso/handover auth.login_second_factor_pending',
      'POST /api/auth/sso/saml/:connectionId/acs auth.login',
      'POST /api/auth/verify-email auth.email_verified',
      'POST /api/auth/verify-email/resend auth.email_verification_requested',
      'POST /api/inbound/:org/:sourceId none (the service appends inbound.received when an event is first applied; a refused or duplicate delivery changes nothing)',
    ]);
  });

  it('gives public routes a written reason and no permission, and org routes a catalogue permission', () => {
    for (const r of routes) {
      const where = `${r.method} ${r.url}`;
      expect(RATE_LIMIT_POLICIES, where).toContain(r.rateLimit);
      if (r.auth.mode === 'public') {
        expect(r.auth.reason.trim().length, where).toBeGreaterThan(10);
        expect(r.permission, where).toBe('none');
      } else if (r.url.includes(':orgId')) {
        expect(ALL_PERMISSIONS, where).toContain(r.permission);
      } else {
        expect(r.permission, where).toBe('self');
      }
    }
  });

  // review R4 finding 5
  // In full: holds every free-text body field to the one user-text rule, or lists it here with why
  // it is never shown as a name
  it('holds every free-text body field to the one user-text rule, or lists it here', () => {
    const NOT_NAMES: Record<string, string> = {
      password: 'a secret: hashed, never shown',
      currentPassword: 'a secret: checked, never shown',
      newPassword: 'a secret: hashed, never shown',
      token: 'a token: parsed and matched by hash, never shown',
      ceremonyToken: 'a token: parsed and matched by hash, never shown',
      mfaToken: 'a token: parsed and matched by hash, never shown',
      code: 'the SSO handover code: parsed and matched by hash, never shown',
      secret: 'a provider\u2019s signing secret or an integration credential: sealed, never shown',
      email: 'an address: stored only through the email schema (ASCII address syntax); at sign-in it is only looked up',
      url: 'a webhook URL: parsed by the WHATWG URL parser (which drops tabs and line breaks) and kept as its href',
      issuer: 'an identity provider\u2019s issuer URL: printable ASCII only, and it must answer discovery',
      domain: 'a DNS name: kept only in its IDNA ASCII form (normalizeDomain refuses control, format and invisible characters)',
    };
    // Names that are identifiers, not labels: a closed ASCII charset that refuses every probe and any other script.
    const IDENTIFIERS: Record<string, string> = {
      'POST /api/orgs/:orgId/integrations/credentials body.name': 'what host code asks the vault for: [a-z0-9._-], 1 to 64 (credentials/rules.ts)',
    };
    const probes = ['Phone"\n\nThis was you during onboarding: no action is needed.\n\n--', 'Ph\u202Eone', 'Ph\u200Bone', 'Phone\u0085'];
    const unwrap = (schema: z.ZodType): z.ZodType => (schema instanceof z.ZodOptional || schema instanceof z.ZodNullable ? unwrap(schema.unwrap() as z.ZodType) : schema);
    const accepting: string[] = [];
    const names: string[] = [];
    for (const r of routes) {
      const body = r.schema.body as z.ZodType | undefined;
      if (!(body instanceof z.ZodObject)) continue;
      for (const [key, field] of Object.entries(body.shape as Record<string, z.ZodType>)) {
        const schema = unwrap(field);
        const where = `${r.method} ${r.url} body.${key}`;
        if (probes.some((p) => schema.safeParse(p).success) && !(key in NOT_NAMES)) accepting.push(where);
        if (where in IDENTIFIERS) {
          expect(schema.safeParse('T\u00E9l\u00E9phone de Zoe\u0308 \u{1F4F1}').success, where).toBe(false);
          expect(probes.some((p) => schema.safeParse(p).success), where).toBe(false);
        } else if (/name|description|label|title/i.test(key)) {
          names.push(where);
          // A name in any script, NFC-normalised (e + combining diaeresis becomes ë).
          expect(schema.safeParse('T\u00E9l\u00E9phone de Zoe\u0308 \u{1F4F1}').data, where).toBe('T\u00E9l\u00E9phone de Zo\u00EB \u{1F4F1}');
        }
      }
    }
    expect(accepting, 'free text that accepts line breaks, bidi or invisible characters').toEqual([]);
    expect(names.length).toBeGreaterThanOrEqual(12);
  });

  it('answers every route of the table (none is shadowed or unmounted)', async () => {
    for (const r of routes) {
      const url = r.url.replace(/:([A-Za-z]+)/g, 'x');
      const res = await h.built.app.inject({ method: r.method, url, headers: { origin: ORIGIN } });
      // Without credentials a mounted session route says 401, never the not-found handler's 404.
      if (r.auth.mode === 'session') expect(res.statusCode, `${r.method} ${r.url}`).toBe(401);
      else expect(res.statusCode, `${r.method} ${r.url}`).not.toBe(404);
    }
  });
});

describe('a route that does not declare everything refuses to start', () => {
  const denyAll: Authenticators = {
    session: async () => null,
    key: async () => null,
    denied: async () => undefined,
    readScope: (fn) => fn(),
  };
  const opts: PipelineOptions = { auth: denyAll, strictAudit: true, now: () => new Date(), limiter: null };
  const servers: FastifyInstance[] = [];

  async function server(): Promise<FastifyInstance> {
    const app = await createHttpServer({
      logger: pino({ level: 'silent' }),
      allowedOrigins: [ORIGIN],
      corsOrigins: [],
      trustedProxies: [],
      hsts: false,
      sessionCookieName: 'sid',
      metrics: new Metrics(false),
    });
    servers.push(app);
    return app;
  }
  afterAll(async () => {
    for (const s of servers) await s.close().catch(() => undefined);
  });

  const complete = (over: Partial<AnyRoute> = {}): AnyRoute =>
    ({
      ...defineRoute({
        method: 'GET', url: '/probe', summary: 'probe', tags: ['test'], auth: { mode: 'public', reason: 'a test route for the start checks' },
        permission: 'none', rateLimit: 'probe', audit: { none: 'read' }, schema: { query: z.object({}), response: z.object({ ok: z.boolean() }) },
        errors: [], handler: async () => ({ ok: true }),
      }),
      ...over,
    }) as AnyRoute;

  /** A route with one declaration removed, as a caller bypassing the types would build it. */
  const without = (field: keyof AnyRoute, over: Partial<AnyRoute> = {}): AnyRoute => {
    const r: Record<string, unknown> = { ...complete(over) };
    delete r[field];
    return r as unknown as AnyRoute;
  };

  it('mounts and serves a complete route (control)', async () => {
    const app = await server();
    await app.register(async (scope) => mountRoutes(scope, [complete()], opts));
    await app.ready();
    const res = await app.inject({ method: 'GET', url: '/probe' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ ok: true });
  });

  it('createHttpServer refuses a route registered without a definition', async () => {
    const app = await server();
    let thrown: unknown = null;
    try {
      app.get('/naked', async () => 'no declarations');
      await app.ready();
    } catch (err) {
      thrown = err;
    }
    expect(String(thrown)).toContain('route GET /naked is incomplete: not built with defineRoute');
  });

  it('createHttpServer refuses a route whose config carries an incomplete definition', async () => {
    const app = await server();
    let thrown: unknown = null;
    try {
      app.route({ method: 'POST', url: '/half', config: { route: without('permission', { method: 'POST', url: '/half' }) }, handler: async () => 'x' });
      await app.ready();
    } catch (err) {
      thrown = err;
    }
    expect(String(thrown)).toContain('route POST /half is incomplete: no permission');
  });

  const broken: [string, AnyRoute, string][] = [
    ['no permission', without('permission'), 'no permission'],
    ['public without a reason', complete({ auth: { mode: 'public', reason: '   ' } }), 'public without a written reason'],
    ['no auth mode', without('auth'), 'no auth mode'],
    ['no rate-limit policy', without('rateLimit'), 'no known rate-limit policy'],
    ['an unknown rate-limit policy', complete({ rateLimit: 'unlimited' as AnyRoute['rateLimit'] }), 'no known rate-limit policy'],
    ['the pipeline\'s own address policy', complete({ rateLimit: 'mfa-verify-address' }), 'mfa-verify-address is counted by the pipeline'],
    ['no audit declaration', without('audit'), 'no audit declaration'],
    ['audit "none" without a reason', complete({ audit: { none: ' ' } }), 'audit "none" without a reason'],
    ['a session mutation without an audit action', complete({ method: 'POST', auth: { mode: 'session' }, permission: 'self', audit: { none: 'nothing to see' } }),
      'state-changing routes must declare an audit action'],
    ['a session route with permission "none"', complete({ auth: { mode: 'session' }, permission: 'none' }), 'authenticated routes need a permission or "self"'],
    ['a public route carrying a permission', complete({ permission: 'projects:read' }), 'public routes carry permission "none"'],
    ['an org route without a catalogue permission', complete({ url: '/orgs/:orgId/x', auth: { mode: 'session' }, permission: 'self' }),
      'org-scoped routes need a catalogue permission'],
    ['no response schema', complete({ schema: { query: z.object({}) } }), 'no response schema (schema.response)'],
    ['a 204 route declaring a body', complete({ status: 204 }), 'a 204 answer has no body to declare'],
    ['no errors declaration', without('errors'), 'no errors declaration'],
    ['no summary', without('summary'), 'no summary'],
    ['no handler', without('handler'), 'no handler'],
    ['owner recovery on a route that is not an org session route', complete({ auth: { mode: 'session' }, permission: 'self', ownerRecovery: true }),
      'owner recovery is for org-scoped session routes'],
  ];

  it.each(broken)('mountRoutes throws for a route with %s', async (_name, route, why) => {
    const app = await server();
    expect(() => mountRoutes(app, [route], opts)).toThrow(`is incomplete: ${why}`);
  });

  it('buildApp-style mounting (inside an encapsulated context) fails the start, not the first request', async () => {
    const app = await server();
    await expect(
      (async () => {
        await app.register(async (scope) => mountRoutes(scope, [complete({ url: '/ok' }), without('permission', { url: '/bad' })], opts));
        await app.ready();
      })(),
    ).rejects.toThrow('route GET /bad is incomplete: no permission');
  });
});
