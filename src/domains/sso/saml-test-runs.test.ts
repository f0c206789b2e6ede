import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../crypto/index.js';
import { createTestApp, ORIGIN, type Problem, type TestApp } from '../../../test/support/app.js';
import { call, sessionFrom } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { idpKey, samlForm, TestSamlIdp, type AssertionSpec, type IdpKey } from '../../../test/support/saml.js';
import type { SsoTestView } from './responses.js';
import { auditRows } from '../../../test/support/evidence.js';

const FLOW = '__Host-palisade_saml';
const IDP_ORIGIN = 'https://idp.test';

/**
 * "Test connection" for SAML: the admin's run goes through the real AuthnRequest and ACS, every
 * check of a sign-in applied to really signed responses, and records what the IdP asserted
 * without a session, an account, a membership or an identity link.
 */
describe.each(ENGINES)('SAML connection test runs on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let domain: string;
  let idp: TestSamlIdp;
  let forger: IdpKey;
  /** Disabled: an admin tests it before anyone can sign in with it. */
  let conn: string;
  /** Another disabled connection of the same org, to the same IdP. */
  let other: string;
  let owner: string;

  const acsPath = (id: string) => `/api/auth/sso/saml/${id}/acs`;
  const sp = (id: string) => ({ acsUrl: `${ORIGIN}${acsPath(id)}`, audience: `${ORIGIN}/api/auth/sso/saml/${id}/metadata` });
  const post = (id: string, body: string, flow?: string) =>
    call(h, 'POST', acsPath(id), {
      payload: body,
      headers: { origin: IDP_ORIGIN, 'content-type': 'application/x-www-form-urlencoded', ...(flow ? { cookie: `${FLOW}=${flow}` } : {}) },
    });
  const email = () => `t-${newId().slice(0, 8)}@${domain}`;
  const count = async (table: string) => Number((await h.t.owner.query<{ n: string }>(`select count(*)::int as n from ${table}`))[0]?.n);
  const counts = async () => ({ users: await count('users'), sessions: await count('sessions'), identities: await count('sso_identities'), members: await count('memberships') });
  const readTest = (testId: string, id = conn) => call(h, 'GET', `/api/orgs/${acme}/sso/connections/${id}/tests/${testId}`, { cookie: owner });

  /** The admin starts a run: the AuthnRequest the browser carries to the IdP, and the SAML flow cookie. */
  async function startRun(id = conn): Promise<{ testId: string; requestId: string; flow: string }> {
    const res = await call(h, 'POST', `/api/orgs/${acme}/sso/connections/${id}/test`, { cookie: owner, payload: { returnTo: '/settings/sso' } });
    expect(res.statusCode, res.body).toBe(201);
    const { testId, location } = res.json<{ testId: string; location: string }>();
    expect(location.startsWith(idp.ssoUrl)).toBe(true);
    const req = TestSamlIdp.requestOf(location);
    expect(req.acsUrl).toBe(sp(id).acsUrl);
    const cookie = res.cookies.find((c) => c.name === FLOW);
    expect(cookie?.sameSite).toBe('None');
    expect(cookie?.httpOnly).toBe(true);
    return { testId, requestId: req.id, flow: cookie?.value ?? '' };
  }
  const answer = (who: string, requestId: string | undefined, over: Partial<AssertionSpec> = {}, id = conn) =>
    idp.response({ ...sp(id), nameId: who, inResponseTo: requestId, attributes: { email: who, name: 'Ada Test', groups: ['eng', 'ops'], department: 'R&D' }, ...over });
  /** The ACS answered a test run: back to the page with the run's id, and no session. */
  const backToRun = (res: LightMyRequestResponse, testId: string) => {
    expect(res.statusCode, res.body).toBe(302);
    expect(res.headers.location).toBe(`/settings/sso?sso_test=${testId}`);
    expect(sessionFrom(res)).toBeFalsy();
  };
  const view = async (testId: string, id = conn) => {
    const r = await readTest(testId, id);
    expect(r.statusCode, r.body).toBe(200);
    return r.json<SsoTestView>();
  };

  beforeAll(async () => {
    forger = await idpKey('forger');
    idp = new TestSamlIdp(`https://idp.test/${newId()}`, await idpKey('acme idp'));
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    domain = `saml-test-${newId().slice(0, 8)}.example`;
    const ownerId = await h.userId(h.user('acme', 'owner').email);
    await h.t.owner.query('insert into org_domains (org_id, id, domain, record_value, created_by, created_at, verified_at) values ($1, $2, $3, $4, $5, now(), now())', [
      acme, newId(), domain, 'palisade-verification=test', ownerId,
    ]);
    await h.t.owner.query('insert into verified_domains (domain, org_id) values ($1, $2)', [domain, acme]);
    owner = await h.cookieFor(h.user('acme', 'owner').email);
    const create = async () => {
      const c = await call(h, 'POST', `/api/orgs/${acme}/sso/connections`, {
        cookie: owner, payload: { kind: 'saml', name: 'SAML IdP', metadataXml: idp.metadataXml(), jitRole: 'member', allowIdpInitiated: true },
      });
      expect(c.statusCode, c.body).toBe(201);
      return c.json<{ id: string }>().id;
    };
    conn = await create();
    other = await create();
  });
  afterAll(async () => h?.close());

  it('runs the real AuthnRequest and ACS, records the claims and what a sign-in would do, and creates nothing', async () => {
    const who = email();
    const before = await counts();
    const { testId, requestId, flow } = await startRun();
    const res = await post(conn, samlForm(answer(who, requestId)), flow);
    backToRun(res, testId);
    // The cookie is cleared: a run is answered once.
    expect(res.cookies.find((c) => c.name === FLOW)?.value).toBe('');
    expect(await counts()).toEqual(before);

    const v = await view(testId);
    expect(v).toMatchObject({ id: testId, connectionId: conn, status: 'succeeded', reason: null });
    expect(v.claims).toEqual({
      issuer: idp.entityId, subject: who, email: who, emailVerified: true, name: 'Ada Test', groups: ['eng', 'ops'],
      attributes: { email: [who], name: ['Ada Test'], groups: ['eng', 'ops'], department: ['R&D'] },
    });
    expect(v.signIn).toMatchObject({ outcome: 'creates_account', userId: null, role: 'member' });

    // Spent like a sign-in's: the request is used, the assertion id remembered.
    const [spent] = await h.t.owner.query<{ used_at: Date | null }>('select used_at from saml_requests where request_id = $1', [requestId]);
    expect(spent?.used_at).toBeTruthy();
    // Sealed at rest; the audit trail keeps the outcome only.
    const [row] = await h.t.owner.query<{ result_sealed: string }>('select result_sealed from sso_tests where id = $1', [testId]);
    expect(row?.result_sealed).not.toContain(who);
    const events = (await auditRows(h, "where action like 'sso.connection_test%'")).filter((e) => JSON.stringify(e.details).includes(testId));
    expect(events.map((e) => e.action).sort()).toEqual(['sso.connection_test_started', 'sso.connection_tested']);
    expect(JSON.stringify(events)).not.toContain(who);
  });

  it('records a tampered response, another key\u2019s signature and an unsigned response as failed runs', async () => {
    const who = email();
    const before = await counts();
    const cases: [(requestId: string) => string, RegExp][] = [
      [(id) => answer(`x${who}`, id).replace(`>x${who}<`, `>${who}<`), /signed/],
      [(id) => answer(who, id, { key: forger }), /signed/],
      [(id) => answer(who, id, { signResponse: false }), /signed/],
      [(id) => answer(who, id, { audience: sp(other).audience }), /audience/],
      [(id) => answer(who, id, { recipient: `${ORIGIN}/elsewhere` }), /Recipient/],
    ];
    for (const [make, why] of cases) {
      const { testId, requestId, flow } = await startRun();
      backToRun(await post(conn, samlForm(make(requestId)), flow), testId);
      const v = await view(testId);
      expect(v.status).toBe('failed');
      expect(v.claims).toBeNull();
      expect(v.reason).toMatch(why);
    }
    expect(await counts()).toEqual(before);
  });

  it('keeps a test response single use: replayed with its cookie, without it, or unsolicited, nothing signs in', async () => {
    const who = email();
    const { testId, requestId, flow } = await startRun();
    const body = samlForm(answer(who, requestId));
    backToRun(await post(conn, body, flow), testId);
    const fresh = await h.cookieFor(h.user('acme', 'owner').email);
    const before = await counts();
    // The same response again with the copied cookie: its request is spent, its assertion
    // remembered, its run answered. Refused and audited; the run keeps its first result.
    const again = await post(conn, body, flow);
    expect(again.statusCode, again.body).toBe(401);
    expect(again.json<Problem>().detail).toMatch(/already ended/);
    expect(sessionFrom(again)).toBeFalsy();
    const [refusal] = await h.t.owner.query<{ result: string }>("select result from audit_events where action = 'auth.sso_failed' and target_id = $1 order by at desc, seq desc limit 1", [conn]);
    expect(refusal?.result).toBe('failure');
    expect((await view(testId)).status).toBe('succeeded');
    // Without the test cookie the connection is a disabled one: no sign-in through it at all.
    const bare = await post(conn, body);
    expect(bare.statusCode, bare.body).toBe(404);
    expect(sessionFrom(bare)).toBeFalsy();
    // Enabled (IdP-initiated on), the spent response still signs nobody in.
    expect((await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${conn}`, { cookie: fresh, payload: { enabled: true } })).statusCode).toBe(200);
    try {
      const replay = await post(conn, body);
      expect(replay.statusCode, replay.body).toBe(401);
      expect(replay.json<Problem>().code).toBe('sso_failed');
      expect(sessionFrom(replay)).toBeFalsy();
      // An unsolicited response (valid for an IdP-initiated sign-in) posted with a test cookie
      // does not stand in for the run's answer.
      const run = await startRun();
      backToRun(await post(conn, samlForm(answer(email(), undefined)), run.flow), run.testId);
      const v = await view(run.testId);
      expect(v.status).toBe('failed');
      expect(v.reason).toMatch(/did not start/);
    } finally {
      expect((await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${conn}`, { cookie: fresh, payload: { enabled: false } })).statusCode).toBe(200);
    }
    expect(await counts()).toEqual(before);
  });

  it('binds a run to its connection: its cookie opens no other disabled connection, and a response to another request fails it', async () => {
    const { testId, requestId, flow } = await startRun();
    // The run's cookie is for `conn`: `other` stays a disabled connection (404), whatever it is posted.
    const elsewhere = await post(other, samlForm(answer(email(), requestId, {}, other)), flow);
    expect(elsewhere.statusCode, elsewhere.body).toBe(404);
    // A response answering a request of another run.
    const second = await startRun();
    backToRun(await post(conn, samlForm(answer(email(), second.requestId)), flow), testId);
    expect((await view(testId)).reason).toMatch(/did not start/);
    // Only the admin who started a run reads it; a member cannot start one.
    const admin = await h.cookieFor(h.user('acme', 'admin').email);
    expect((await call(h, 'GET', `/api/orgs/${acme}/sso/connections/${conn}/tests/${testId}`, { cookie: admin })).statusCode).toBe(404);
    const member = await h.cookieFor(h.user('acme', 'member').email);
    expect((await call(h, 'POST', `/api/orgs/${acme}/sso/connections/${conn}/test`, { cookie: member, payload: {} })).statusCode).toBe(403);
  });
});
