/**
 * Authorization matrix (the "matrix" that docs/threat-model.md cites for cross-org access,
 * restricted members, escalation and API keys): generated from the live
 * route table that buildApp returns, never from a hand-copied list. Every route × every acme demo
 * identity × credential (live session, revoked session, none) × org (own; other; the caller's org
 * addressing another org's object) × project where the url has :projectId (assigned; unassigned;
 * another org's; for assets, the assigned project addressing an asset of the unassigned one).
 * Expected outcomes are derived from each route's declared auth mode and permission and the
 * built-in role catalogue (see ./cases.ts). Each refusal is also traced to the layer that must make
 * it: the pipeline's `authz.denied` audit event, or the domain's "no such object" for foreign ids.
 *
 * API keys are credentials of the same matrix: every route meets a secret and a publishable key
 * of the identity (never a credential on console routes); the key routes (/v1) also meet a
 * project-bound, a revoked, an expired and another org's key, and session cookies (never a
 * credential there). The org policies (MFA requirement, admin IP allowlist) run over the
 * signed-in own-org cases in their own test below.
 *
 * Runs on one engine: MATRIX_ENGINE, else postgres when TEST_ENGINES has it, else pglite.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/db/database.js';
import { isMutation, orgScoped, projectScoped, type AnyRoute } from '../../src/http/route.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';
import {
  ALL_PERMISSIONS,
  ALWAYS_RESTRICTED_ROLES,
  BUILTIN_ROLE_PERMISSIONS,
  isAdminLevel,
  ORG_WIDE_PERMISSIONS,
  type BuiltinRole,
  type Permission,
} from '../../src/kernel/permissions.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { MULTIPART_TYPE, oneFile } from '../support/multipart.js';
import { startLoopbackDns, type LoopbackDns } from '../support/dns.js';
import { startOidcProvider, type LoopbackIdp } from '../support/oidc.js';
import { idpKey, type IdpKey } from '../support/saml.js';
import { ENGINES } from '../support/db.js';
import { buildCases, identitySpec, isKeyCredential, minimumCases, objectParams, pathParams, routeKey, specOf, type IdentitySpec, type MatrixCase } from './cases.js';
import { Fixtures, type OrgFixture } from './fixtures.js';
import { LIVE_BODIES, liveState, OWN_ORG, type Body } from './live-bodies.js';

function chooseEngine(): Engine {
  const forced = process.env.MATRIX_ENGINE;
  if (forced === 'pglite' || forced === 'postgres') return forced;
  if (forced) throw new Error(`MATRIX_ENGINE must be pglite or postgres, not ${forced}`);
  return ENGINES.includes('postgres') ? 'postgres' : 'pglite';
}
const ENGINE = chooseEngine();

/** The other org of every case (the caller's: live-bodies.ts OWN_ORG). */
const OTHER_ORG = 'globex';

function isRecord(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The identity provider the SSO connection cases discover (started before the cases run). */
let matrixIdp: LoopbackIdp | undefined;
/** The SAML IdP certificate the matrix's SAML connections trust (made once). */
let matrixSamlKey: IdpKey | undefined;

/** Routes that end the caller's membership: the case runs as a fresh member with the identity's role. */
const CALLER_CONSUMED: Record<string, string> = {
  'POST /api/orgs/:orgId/leave': 'leaving would remove the demo identity from acme for every later case',
};

/** A DELETE whose last path parameter is :projectId destroys the project: it gets a fresh one. */
function deletesProject(route: AnyRoute): boolean {
  return route.method === 'DELETE' && pathParams(route.url).at(-1) === 'projectId';
}

interface Outcome {
  c: MatrixCase;
  method: string;
  url: string;
  status: number;
  code: string | null;
  requestId: string | null;
}

const DENIAL_STATUSES = new Set([401, 403, 404]);
const DENIAL_CODE: Record<401 | 403 | 404, string> = { 401: 'unauthenticated', 403: 'forbidden', 404: 'not_found' };
/**
 * An access-control refusal. A public route may answer 401 with its own code (an SSO callback
 * without its flow answers sso_failed): the handler ran, so that is the route's result, not a denial.
 */
function refusedAccess(o: Outcome): boolean {
  if (!DENIAL_STATUSES.has(o.status)) return false;
  return o.c.route.auth.mode !== 'public' || Object.values(DENIAL_CODE).includes(o.code ?? '');
}

function describeCase(o: Outcome): string {
  const { c } = o;
  const dims = [c.identity.label, c.credential, c.org !== 'none' ? `org=${c.org}` : '', c.project !== 'none' ? `project=${c.project}` : '']
    .filter(Boolean)
    .join(' ');
  const exp = c.expected.kind === 'allow' ? 'allow' : `${c.expected.status}`;
  return `${routeKey(c.route)} [${dims}] expected ${exp} (${c.expected.why}), got ${o.status}${o.code ? ` ${o.code}` : ''} — ${o.method} ${o.url}`;
}

describe(`authorization matrix on ${ENGINE}`, () => {
  let h: TestApp;
  let fx: Fixtures;
  let dns: LoopbackDns;
  let routes: readonly AnyRoute[];
  let identities: { spec: IdentitySpec; email: string }[];
  /** Path parameters of the cases authentication refuses, by route, org side and project side (see caseParams). */
  const authnDeniedParams = new Map<string, Record<string, string>>();

  beforeAll(async () => {
    dns = await startLoopbackDns();
    matrixIdp = liveState.idp = await startOidcProvider({
      clients: [{ client_id: 'matrix', client_secret: 'matrix-secret', redirect_uris: [`${ORIGIN}/api/auth/sso/oidc/callback`, `${ORIGIN}/api/auth/social/google/callback`] }],
    });
    // Loopback egress: the IdP above runs on this machine. It is also the Google preset's issuer (social sign-in).
    h = await createTestApp(ENGINE, {
      config: {
        DNS_SERVERS: dns.server, PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true',
        // Who may upload is what the matrix checks; the scan itself runs against a real clamd in
        // test/files/uploads.test.ts. The development opt-out keeps this suite free of a daemon.
        PALISADE_UPLOADS_UNSCANNED: 'true',
        SOCIAL_GOOGLE_CLIENT_ID: 'matrix', SOCIAL_GOOGLE_CLIENT_SECRET: 'matrix-secret', SOCIAL_GOOGLE_ISSUER: matrixIdp.issuer,
      },
    });
    fx = new Fixtures(h);
    await fx.init();
    // The console's origin doubles as the page the publishable keys are used from.
    await h.t.owner.query(
      `insert into org_settings (org_id, browser_origins) values ($1, $2) on conflict (org_id) do update set browser_origins = excluded.browser_origins`,
      [fx.org(OWN_ORG).id, [ORIGIN]],
    );
    routes = h.built.routes;
    identities = h.demo.logins.filter((l) => l.org === OWN_ORG).map((l) => ({ spec: identitySpec(l.role), email: l.email }));
  });
  afterAll(async () => {
    await h?.close();
    await dns?.close();
    await matrixIdp?.close();
  });

  it('derives its cases from the mounted route table and the seeded identities', async () => {
    expect(routes.length).toBeGreaterThan(0);
    for (const r of routes) expect(h.built.app.hasRoute({ method: r.method, url: r.url }), routeKey(r)).toBe(true);
    const keys = new Set(routes.map(routeKey));
    for (const k of [...Object.keys(LIVE_BODIES), ...Object.keys(CALLER_CONSUMED)]) expect(keys, `stale entry ${k}`).toContain(k);
    // Every built-in role is exercised, and each identity really holds the role its spec assumes.
    const roles = new Set(identities.map((i) => i.spec.role));
    for (const r of ['owner', 'admin', 'member', 'viewer', 'project_viewer']) expect(roles).toContain(r);
    expect(identities.some((i) => i.spec.role === 'member' && i.spec.restricted)).toBe(true);
    const own = fx.org(OWN_ORG);
    for (const i of identities) {
      expect(await fx.membership(own.id, fx.userId(i.email)), i.email).toEqual({ role: i.spec.role, restricted: i.spec.restricted });
      expect(await fx.membership(fx.org(OTHER_ORG).id, fx.userId(i.email)), i.email).toBeUndefined();
    }
  });

  it('derives expectations from a role catalogue that matches the design\u2019s role ladder', () => {
    // The built-in roles, most to least (src/kernel/permissions.ts, README "built-in role"): owner
    // holds every permission; admin all but billing:manage, owners:manage, org:delete, data_keys:rotate, privacy:manage; member
    // operates on projects and their resources and creates own API keys within their permissions;
    // viewer and project_viewer read. Each role holds nothing the one above it lacks. The matrix
    // trusts BUILTIN_ROLE_PERMISSIONS for its expectations, so the catalogue itself is held to
    // that ladder here.
    const perms = (r: BuiltinRole) => new Set<Permission>(BUILTIN_ROLE_PERMISSIONS[r]);
    const subset = (a: Set<Permission>, b: Set<Permission>) => [...a].filter((p) => !b.has(p));
    expect(perms('owner')).toEqual(new Set(ALL_PERMISSIONS));
    for (const [lower, higher] of [['admin', 'owner'], ['member', 'admin'], ['viewer', 'member'], ['project_viewer', 'viewer']] as const) {
      expect(subset(perms(lower), perms(higher)), `${lower} ⊆ ${higher}`).toEqual([]);
    }
    for (const p of ['billing:manage', 'owners:manage', 'org:delete', 'org:export', 'data_keys:rotate', 'privacy:manage'] as const) expect(perms('admin').has(p), `admin ${p}`).toBe(false);
    // "member (operate on projects and their resources; create own API keys within their permissions)"
    const writesOutsideProjects = [...perms('member')].filter((p) => !p.endsWith(':read') && !/^(projects|assets|files):/.test(p) && p !== 'keys:own');
    expect(writesOutsideProjects, 'member writes only projects and their resources, and their own keys').toEqual([]);
    for (const r of ['viewer', 'project_viewer'] as const) expect([...perms(r)].filter((p) => !p.endsWith(':read')), `${r} is read-only`).toEqual([]);
    expect(ALWAYS_RESTRICTED_ROLES).toEqual(['project_viewer']);
    // Review R4 finding 4: roles meant to be restricted (always, or as the demo's restricted
    // member) grant nothing org-wide, so restricting them takes nothing away they advertise.
    for (const r of [...ALWAYS_RESTRICTED_ROLES, 'member', 'viewer'] as const) {
      expect([...perms(r)].filter((p) => ORG_WIDE_PERMISSIONS.includes(p)), `${r} holds org-wide permissions`).toEqual([]);
    }
  });

  it('answers every route × identity × org × project × credential as its declaration says', { timeout: 300_000 }, async () => {
    const started = performance.now();
    const specs = identities.map((i) => i.spec);
    const cases = buildCases(routes, specs);
    const emailOf = new Map(identities.map((i) => [i.spec.label, i.email]));
    const own = fx.org(OWN_ORG);
    const other = fx.org(OTHER_ORG);

    const outcomes: Outcome[] = [];
    for (const c of cases) {
      const email = emailOf.get(c.identity.label);
      if (!email) throw new Error(`no email for ${c.identity.label}`);
      outcomes.push(await runCase(c, email, own, other));
    }

    // The pipeline records each refusal it makes; a 404 for another org's object must come from the
    // domain, and a refusal the pipeline should make must not be left to RLS alone.
    const denied = await fx.deniedEvents([SYSTEM_ORG_ID, own.id, other.id]);
    const refusedBy = (o: Outcome): string | null => {
      const e = o.requestId ? denied.get(o.requestId) : undefined;
      if (!e) return null;
      return e.route === routeKey(o.c.route) ? e.reason : `${e.reason} on ${e.route}`;
    };

    const unexpectedAllows: Outcome[] = [];
    const unexpectedDenials: Outcome[] = [];
    const wrongDenials: Outcome[] = [];
    const wrongLayer: Outcome[] = [];
    const serverErrors: Outcome[] = [];
    const allowedNon2xx: Outcome[] = [];
    for (const o of outcomes) {
      const e = o.c.expected;
      if (o.status >= 500) serverErrors.push(o);
      else if (e.kind === 'deny') {
        if (o.status === e.status && o.code === DENIAL_CODE[e.status]) {
          const by = refusedBy(o);
          const want = e.layer === 'authn' || e.layer === 'object' ? null : e.layer;
          if (by !== want) wrongLayer.push({ ...o, code: `${o.code ?? ''}, refused by ${by ?? 'no authz.denied event'}` });
          continue;
        }
        // Any answer other than an authorization denial means the handler ran: the request got through.
        if (!DENIAL_STATUSES.has(o.status)) unexpectedAllows.push(o);
        else wrongDenials.push(o);
      } else if (refusedAccess(o) || refusedBy(o) !== null) unexpectedDenials.push(o);
      else if (o.status >= 300) allowedNon2xx.push(o);
    }
    const allowedSession = outcomes.filter((o) => o.c.expected.kind === 'allow' && o.c.route.auth.mode !== 'public');
    const ms = Math.round(performance.now() - started);

    const floor = minimumCases(routes, specs.length);
    console.log(
      `authorization matrix: ${outcomes.length} cases, ${unexpectedAllows.length} unexpected allows ` +
        `(${routes.length} routes, ${specs.length} identities, floor ${floor}, ${ENGINE}, ${ms} ms; ` +
        `${outcomes.filter((o) => o.c.expected.kind === 'deny').length} denials, ${unexpectedDenials.length} unexpected denials, ` +
        `${wrongDenials.length} wrong denial codes, ${wrongLayer.length} refused by the wrong layer, ${serverErrors.length} server errors)`,
    );
    const show = (title: string, list: Outcome[]) => {
      if (list.length > 0) console.log(`${title} (${list.length}):\n  ${list.slice(0, 40).map(describeCase).join('\n  ')}`);
    };
    show('UNEXPECTED ALLOWS', unexpectedAllows);
    show('unexpected denials', unexpectedDenials);
    show('wrong denial codes', wrongDenials);
    show('refused by the wrong layer', wrongLayer);
    show('server errors', serverErrors);
    show('allowed, answered with a non-2xx domain result', onePerRouteAndStatus(allowedNon2xx));

    expect(outcomes.length).toBeGreaterThanOrEqual(floor);
    expect(new Set(outcomes.map((o) => routeKey(o.c.route)))).toEqual(new Set(routes.map(routeKey)));
    expect(unexpectedAllows.map(describeCase)).toEqual([]);
    expect(unexpectedDenials.map(describeCase)).toEqual([]);
    expect(wrongDenials.map(describeCase)).toEqual([]);
    expect(wrongLayer.map(describeCase)).toEqual([]);
    expect(serverErrors.map(describeCase)).toEqual([]);
    // Fixtures are real objects: an allowed signed-in request succeeds, it does not merely avoid a denial.
    expect(allowedSession.filter((o) => o.status >= 300).map(describeCase)).toEqual([]);
  });

  /**
   * Org policies over the same cases (signed-in, own org, in-scope project): with MFA required
   * past its grace period, every org route refuses the demo identities (none has a factor) before
   * anything else; with an admin IP allowlist, a request from outside keeps its declared answer
   * unless the route needs an admin-level permission the caller holds, which becomes 403
   * ip_not_allowed, owners on owner-recovery routes aside.
   */
  it('applies the org MFA requirement and the admin IP allowlist to every org route and identity', { timeout: 300_000 }, async () => {
    const own = fx.org(OWN_ORG);
    const other = fx.org(OTHER_ORG);
    const emailOf = new Map(identities.map((i) => [i.spec.label, i.email]));
    // Console routes with a session, key routes with the identity's secret key: a key answers to
    // the org's policies through its creator (MFA requirement) and its request (IP allowlist).
    const cases = buildCases(routes, identities.map((i) => i.spec)).filter(
      (c) =>
        (c.route.auth.mode === 'key' ? c.credential === 'secret_key' : c.credential === 'session') &&
        c.org === 'own' && (c.project === 'none' || c.project === 'assigned') && orgScoped(c.route),
    );
    expect(cases.length).toBeGreaterThan(100);
    const wrong: string[] = [];
    const check = (o: Outcome, wantStatus: number | 'allow', wantCode?: string) => {
      const ok = wantStatus === 'allow' ? !DENIAL_STATUSES.has(o.status) && o.status < 500 : o.status === wantStatus && o.code === wantCode;
      if (!ok) wrong.push(`${describeCase(o)} (wanted ${wantStatus} ${wantCode ?? ''})`);
    };
    const setPolicy = (column: 'mfa_enforced_from' | 'admin_ip_allowlist', value: unknown) =>
      h.t.owner.query(`update org_settings set ${column} = $2 where org_id = $1`, [own.id, value]);

    await setPolicy('mfa_enforced_from', new Date(h.clock.now().getTime() - 1000).toISOString());
    try {
      for (const c of cases) check(await runCase(c, emailOf.get(c.identity.label) ?? '', own, other), 403, 'mfa_enrollment_required');
    } finally {
      await setPolicy('mfa_enforced_from', null);
    }
    await setPolicy('admin_ip_allowlist', ['198.51.100.0/24']);
    try {
      for (const c of cases) {
        const o = await runCase(c, emailOf.get(c.identity.label) ?? '', own, other, '203.0.113.9');
        const e = c.expected;
        // Owners keep the owner-recovery routes (their sessions here are freshly stepped up); the
        // settings example changes a session length, which from outside an owner may not (only the list).
        const ownerKeeps = c.route.ownerRecovery && c.route.auth.mode === 'session' && c.identity.permissions.has('owners:manage');
        if (e.kind === 'deny') check(o, e.status, DENIAL_CODE[e.status]);
        else if (ownerKeeps && routeKey(c.route) === 'PATCH /api/orgs/:orgId/settings') check(o, 403, 'ip_not_allowed');
        else if (ownerKeeps) check(o, 'allow');
        else if (isAdminLevel(c.route.permission)) check(o, 403, 'ip_not_allowed');
        else check(o, 'allow');
      }
    } finally {
      await setPolicy('admin_ip_allowlist', []);
    }
    console.log(`org policies over the matrix: ${cases.length * 2} cases (MFA requirement, admin IP allowlist), ${wrong.length} wrong`);
    expect(wrong).toEqual([]);
  });

  /**
   * Review R4 finding 4: a member restricted to projects holds no org-wide permission, even where
   * their membership grants one (rows from before the rule; the API now refuses to write them).
   * A restricted admin, and a secret key they made while unrestricted, meet every org-wide route;
   * the expectations come from the same derivation as above (specOf drops ORG_WIDE_PERMISSIONS).
   */
  it('refuses every org-wide route to a restricted member whose role grants it, and to their older key', { timeout: 120_000 }, async () => {
    const own = fx.org(OWN_ORG);
    const other = fx.org(OTHER_ORG);
    const radmin = await fx.member(own.id, { role: 'admin', restricted: false, projectIds: [] });
    const key = await fx.apiKey(own.id, radmin.userId, { kind: 'secret' });
    await h.t.owner.query('update memberships set restricted = true where org_id = $1 and user_id = $2', [own.id, radmin.userId]);
    await h.t.owner.query('insert into project_access (org_id, project_id, user_id) values ($1, $2, $3)', [own.id, own.assignedProject, radmin.userId]);
    fx.useKeyToken('secret_key', radmin.email, key.token);

    const spec = specOf('restricted_admin', 'admin', true);
    const cases = buildCases(routes, [spec]).filter(
      (c) =>
        (c.route.auth.mode === 'key' ? c.credential === 'secret_key' : c.credential === 'session') &&
        c.org === 'own' && (c.project === 'none' || c.project === 'assigned') && orgScoped(c.route) &&
        ORG_WIDE_PERMISSIONS.includes(c.route.permission as Permission),
    );
    const covered = new Set(cases.map((c) => routeKey(c.route)));
    for (const k of ['GET /api/orgs/:orgId/audit', 'GET /v1/orgs/:orgId/audit', 'GET /api/orgs/:orgId/webhooks', 'GET /api/orgs/:orgId/settings']) expect(covered).toContain(k);
    // The role does grant each of them: the refusals below are the restriction's doing.
    // Owner-only permissions (owners:manage) no admin holds, restricted or not: not this test's subject.
    const granted = new Set<Permission>(BUILTIN_ROLE_PERMISSIONS.admin);
    const ownerOnly = cases.filter((c) => !granted.has(c.route.permission as Permission));
    expect(ownerOnly.every((c) => BUILTIN_ROLE_PERMISSIONS.owner.includes(c.route.permission as Permission))).toBe(true);
    cases.splice(0, cases.length, ...cases.filter((c) => granted.has(c.route.permission as Permission)));
    expect(cases.filter((c) => c.expected.kind !== 'deny' || c.expected.layer !== 'permission').map((c) => routeKey(c.route))).toEqual([]);

    const outcomes: Outcome[] = [];
    for (const c of cases) outcomes.push(await runCase(c, radmin.email, own, other));
    const denied = await fx.deniedEvents([own.id]);
    const wrong = outcomes.filter((o) => o.status !== 403 || o.code !== 'forbidden' || denied.get(o.requestId ?? '')?.reason !== 'permission');
    console.log(`org-wide routes × restricted admin: ${outcomes.length} cases, ${wrong.length} wrong`);
    expect(wrong.map(describeCase)).toEqual([]);
  });

  /** One line per route and status is enough to see what the public routes answer to an example-less body. */
  function onePerRouteAndStatus(list: Outcome[]): Outcome[] {
    const seen = new Set<string>();
    return list.filter((o) => {
      const k = `${routeKey(o.c.route)} ${o.status}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }


  async function runCase(c: MatrixCase, identityEmail: string, own: OrgFixture, other: OrgFixture, from?: string): Promise<Outcome> {
    const { route } = c;
    const key = routeKey(route);

    // Who calls: the identity, or a fresh member holding the same role when the route consumes the caller.
    let callerEmail = identityEmail;
    if (CALLER_CONSUMED[key] && c.credential === 'session') {
      const clone = await fx.member(own.id, {
        role: c.identity.role,
        restricted: c.identity.restricted,
        projectIds: c.identity.restricted ? [own.assignedProject] : [],
      });
      callerEmail = clone.email;
    }

    const params = await caseParams(fx, dns, authnDeniedParams, c, callerEmail, own, other);
    const url = route.url.replace(/:([A-Za-z0-9_]+)/g, (_m, name: string) => {
      const v = params[name];
      if (!v) throw new Error(`no value for :${name} in ${key}`);
      return v;
    });

    // What: the route's example body, with live secrets where the example cannot hold them.
    let payload: Body | undefined;
    let onSuccess: (() => void) | undefined;
    let after: (() => Promise<void>) | undefined;
    if (route.schema.body) {
      const example: unknown = route.example?.() ?? {};
      if (!isRecord(example)) throw new Error(`${key}: example must be an object`);
      payload = { ...example };
    }
    const live = LIVE_BODIES[key];
    if (live) {
      const f = await live.fields(fx, callerEmail, params);
      if (payload) Object.assign(payload, f.patch);
      onSuccess = f.onSuccess;
      after = f.after;
    }

    const headers: Record<string, string> = {};
    if (c.credential === 'session') headers.cookie = await h.cookieFor(callerEmail);
    if (c.credential === 'revoked') headers.cookie = await fx.revokedCookie(callerEmail);
    if (isKeyCredential(c.credential)) {
      headers.authorization = `Bearer ${await fx.keyToken(c.credential, callerEmail, own, other)}`;
      // A registered browser origin of the caller's org (publishable keys need one; others ignore it).
      headers.origin = ORIGIN;
    }
    if (isMutation(route.method)) headers.origin = ORIGIN;
    const body = uploadAware(route, payload, headers);

    const res = await h.built.app.inject({ method: route.method, url, headers, ...(body ? { payload: body } : {}), ...(from ? { remoteAddress: from } : {}) });
    if (res.statusCode < 300 && c.credential === 'session') onSuccess?.();
    await after?.();
    let code: string | null = null;
    let requestId: string | null = null;
    if (String(res.headers['content-type'] ?? '').includes('application/problem+json')) {
      const parsed: unknown = res.json();
      if (isRecord(parsed) && typeof parsed.code === 'string') code = parsed.code;
      if (isRecord(parsed) && typeof parsed.requestId === 'string') requestId = parsed.requestId;
    }
    return { c, method: route.method, url, status: res.statusCode, code, requestId };
  }
});

/**
 * A case's path parameters, with fresh objects behind them. The cases that authentication must
 * refuse (three in four) share one set per route, org side and project side: the request never
 * reaches an object, and one that did would answer something other than 401 unauthenticated
 * (the object's result, or 404 once an earlier leak consumed it), which the matrix reports.
 */
async function caseParams(
  fx: Fixtures, dns: LoopbackDns, authnDeniedParams: Map<string, Record<string, string>>,
  c: MatrixCase, callerEmail: string, own: OrgFixture, other: OrgFixture,
): Promise<Record<string, string>> {
  const h = fx.app;
  const shared = c.expected.kind === 'deny' && c.expected.layer === 'authn' ? `${routeKey(c.route)}|${c.org}|${c.project}` : null;
  const cached = shared ? authnDeniedParams.get(shared) : undefined;
  if (cached) return cached;
  const { route } = c;
  const key = routeKey(route);
  // Where: the org in the url, the project in the url, and the org and project the objects live in.
  const urlOrg = c.org === 'other' ? other : own;
  const projOrg = c.org === 'other' || c.project === 'foreign' ? other : own;
  const objOrg = c.org === 'other' || c.org === 'idor' || c.project === 'foreign' ? other : own;
  const params: Record<string, string> = {};
  if (pathParams(route.url).includes('orgId')) params.orgId = urlOrg.id;
  if (projectScoped(route)) {
    if (deletesProject(route)) params.projectId = await fx.project(projOrg.id, c.project === 'unassigned' ? [] : projOrg.restrictedUserIds);
    else params.projectId = c.project === 'unassigned' ? projOrg.unassignedProject : projOrg.assignedProject;
  }
  const objProject =
    c.project === 'cross' ? own.unassignedProject
    : projectScoped(route) && objOrg === projOrg ? (params.projectId as string)
    : objOrg.assignedProject;
  // A social sign-in provider of the deployment (cases.ts DEPLOYMENT_PARAMS): the Google preset.
  if (pathParams(route.url).includes('provider')) params.provider = 'google';
  for (const name of objectParams(route.url)) {
    switch (name) {
      case 'userId':
        params.userId = (await fx.member(objOrg.id, { role: 'member', restricted: true, projectIds: projectScoped(route) ? [objProject] : [] })).userId;
        break;
      case 'roleId':
        params.roleId = await fx.customRole(objOrg.id);
        break;
      case 'invitationId':
        params.invitationId = (await fx.invitation(objOrg.id, objOrg.ownerId)).id;
        break;
      case 'assetId':
        params.assetId = await fx.asset(objOrg.id, objProject);
        break;
      case 'fileId':
        params.fileId = await fx.file(objOrg.id, objProject, objOrg.ownerId);
        break;
      case 'sessionId':
        params.sessionId = await fx.session(c.org === 'idor' ? other.ownerId : fx.userId(callerEmail));
        break;
      case 'passkeyId':
        params.passkeyId = await fx.passkey(c.org === 'idor' ? other.ownerId : fx.userId(callerEmail));
        break;
      case 'org':
        // The provider-signed receiver names its org as :org (it is no member route).
        params.org = objOrg.id;
        break;
      case 'endpointId':
      case 'deliveryId': {
        if (!params.endpointId) {
          const w = await fx.webhookEndpoint(objOrg.id, objOrg.ownerId);
          params.endpointId = w.endpointId;
          params.deliveryId = w.deliveryId;
        }
        break;
      }
      case 'keyId':
        // The caller's own key (revoking another member's needs keys:manage, a domain rule);
        // for idor and the other org, a key of that org's owner.
        params.keyId = (await fx.apiKey(objOrg.id, objOrg === own ? fx.userId(callerEmail) : objOrg.ownerId, { kind: 'secret' })).id;
        // Expired at once (revoking it still works): the cases leave no active key behind, so the
        // identities stay under the 25 active keys a member may hold.
        await h.t.owner.query('update api_keys set expires_at = $2 where id = $1', [params.keyId, new Date(h.clock.now().getTime() - 1000).toISOString()]);
        break;
      case 'sourceId':
        params.sourceId = await fx.inboundSource(objOrg.id, objOrg.ownerId);
        break;
      case 'streamId':
        params.streamId = await fx.auditStream(objOrg.id, objOrg.ownerId);
        break;
      case 'exportId': params.exportId = await fx.orgExport(objOrg.id, objOrg.ownerId); break;
      case 'credentialId':
        params.credentialId = await fx.credential(objOrg.id, objOrg.ownerId);
        break;
      case 'connectionId':
        // The SAML endpoints serve SAML connections only (an OIDC id is an unknown one there).
        params.connectionId = route.url.startsWith('/api/auth/sso/saml/')
          ? await fx.samlConnection(objOrg.id, objOrg.ownerId, (matrixSamlKey ??= await idpKey('matrix idp')).certPem)
          : await fx.ssoConnection(objOrg.id, objOrg.ownerId, matrixIdp?.issuer ?? '');
        break;
      case 'testId':
        // The caller's own run (a run is read by whoever started it only); the other org's: its owner's.
        params.testId = await fx.ssoTest(objOrg.id, params.connectionId ?? '', objOrg === own ? fx.userId(callerEmail) : objOrg.ownerId);
        break;
      case 'domainId':
        params.domainId = await fx.domainClaim(objOrg.id, objOrg.ownerId, dns.zone);
        break;
      default:
        throw new Error(`the matrix has no fixture for :${name} in ${key}: add one in authz-matrix.test.ts`);
    }
  }
  if (shared) authnDeniedParams.set(shared, params);
  return params;
}

/** An upload's body is one file part (multipart), not the example JSON. */
function uploadAware(route: AnyRoute, payload: Body | undefined, headers: Record<string, string>): Body | Buffer | undefined {
  if (!route.upload) return payload;
  headers['content-type'] = MULTIPART_TYPE;
  return oneFile('matrix.txt', 'a file the matrix uploads', 'text/plain');
}
