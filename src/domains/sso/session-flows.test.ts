import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../crypto/index.js';
import { createTestApp, ORIGIN, type Problem, type TestApp } from '../../../test/support/app.js';
import { call, sessionFrom } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { rsaSigningKey, signInAtIdp, startOidcProvider, type IdpAccount, type LoopbackIdp } from '../../../test/support/oidc.js';
import type { SsoTestView } from './responses.js';
import { auditSelect, auditRows } from '../../../test/support/evidence.js';

const SECRET = 'canary-sso-test-secret-5f0d2a';
const CALLBACK = '/api/auth/sso/oidc/callback';
const FLOW = '__Host-palisade_sso';

/**
 * SSO flows started from a session: an admin's test run (a real sign-in at the IdP that shows the
 * claims and signs nobody in) and a member linking their own identity.
 */
describe.each(ENGINES)('SSO test runs and links on %s', (engine) => {
  let h: TestApp;
  let idp: LoopbackIdp;
  let acme: string;
  let domain: string;
  let connection: string;
  let owner: string;
  const accounts = new Map<string, IdpAccount>();
  const clients = [{ client_id: 'palisade', client_secret: SECRET, redirect_uris: [`${ORIGIN}${CALLBACK}`] }];

  const person = (over: Partial<IdpAccount> = {}): IdpAccount => {
    const sub = `sub-${newId()}`;
    const a = { sub, email: `${sub.slice(4, 16)}@${domain}`, email_verified: true, name: 'Grace Test', groups: ['eng'], ...over };
    accounts.set(sub, a);
    return a;
  };
  const flowOf = (res: LightMyRequestResponse) => res.cookies.find((c) => c.name === FLOW)?.value;
  const count = async (table: string) => Number((await h.t.owner.query<{ n: string }>(`select count(*)::int as n from ${table}`))[0]?.n);
  const startTest = (cookie: string, id = connection, org = acme, payload: object = {}) =>
    call(h, 'POST', `/api/orgs/${org}/sso/connections/${id}/test`, { cookie, payload });
  const readTest = (cookie: string, testId: string, id = connection) => call(h, 'GET', `/api/orgs/${acme}/sso/connections/${id}/tests/${testId}`, { cookie });

  /** Start a run as `cookie`, sign in at the IdP as `who`, come back: the callback's answer and the run id. */
  async function run(cookie: string, who: IdpAccount, tamper?: (u: URL) => void): Promise<{ back: LightMyRequestResponse; testId: string }> {
    const started = await startTest(cookie, connection, acme, { returnTo: '/settings/sso' });
    expect(started.statusCode, started.body).toBe(201);
    const { testId, location } = started.json<{ testId: string; location: string }>();
    const url = await signInAtIdp(location, who.sub, `${ORIGIN}${CALLBACK}`);
    tamper?.(url);
    const back = await call(h, 'GET', `${url.pathname}${url.search}`, { cookie: `${FLOW}=${flowOf(started)}` });
    return { back, testId };
  }

  beforeAll(async () => {
    idp = await startOidcProvider({ clients, accounts, keys: [rsaSigningKey('k1')] });
    h = await createTestApp(engine, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    acme = h.orgId('acme');
    domain = `sso-test-${newId().slice(0, 8)}.example`;
    const ownerId = await h.userId(h.user('acme', 'owner').email);
    await h.t.owner.query('insert into verified_domains (domain, org_id) values ($1, $2)', [domain, acme]);
    await h.t.owner.query('insert into org_domains (org_id, id, domain, record_value, created_by, created_at, verified_at) values ($1, $2, $3, $4, $5, now(), now())', [
      acme, newId(), domain, 'palisade-verification=test', ownerId,
    ]);
    owner = await h.cookieFor(h.user('acme', 'owner').email);
    // Created and left disabled: an admin tests a connection before anyone can sign in with it.
    const c = await call(h, 'POST', `/api/orgs/${acme}/sso/connections`, {
      cookie: owner,
      payload: { kind: 'oidc', name: 'IdP', issuer: idp.issuer, clientId: 'palisade', clientSecret: SECRET, scopes: ['openid', 'email', 'profile', 'groups'], groupRoles: [{ group: 'eng', role: 'member' }] },
    });
    expect(c.statusCode, c.body).toBe(201);
    connection = c.json<{ id: string }>().id;
  });
  afterAll(async () => {
    await h?.close();
    await idp?.close();
  });

  it('shows what the IdP asserted and what a sign-in would do, creating no session, account or link', async () => {
    const grace = person();
    const before = { users: await count('users'), sessions: await count('sessions'), identities: await count('sso_identities'), members: await count('memberships') };
    const { back, testId } = await run(owner, grace);
    expect(back.statusCode, back.body).toBe(302);
    expect(back.headers.location).toBe(`/settings/sso?sso_test=${testId}`);
    expect(sessionFrom(back)).toBeFalsy();
    expect(back.cookies.find((c) => c.name === FLOW)?.value).toBe('');
    expect({ users: await count('users'), sessions: await count('sessions'), identities: await count('sso_identities'), members: await count('memberships') }).toEqual(before);

    const r = await readTest(owner, testId);
    expect(r.statusCode, r.body).toBe(200);
    const view = r.json<SsoTestView>();
    expect(view).toMatchObject({ id: testId, connectionId: connection, status: 'succeeded', reason: null });
    expect(view.claims).toEqual({ issuer: idp.issuer, subject: grace.sub, email: grace.email, emailVerified: true, name: 'Grace Test', groups: ['eng'], attributes: null });
    expect(view.signIn).toMatchObject({ outcome: 'creates_account', userId: null, role: 'member' });

    // The claims are someone's personal data: sealed at rest, and the audit trail keeps the outcome only.
    const [row] = await h.t.owner.query<{ result_sealed: string }>('select result_sealed from sso_tests where id = $1', [testId]);
    expect(row?.result_sealed).not.toContain(grace.email);
    const events = (await auditRows(h, "where action like 'sso.connection_test%'")).filter((e) => JSON.stringify(e.details).includes(testId));
    expect(events.map((e) => e.action).sort()).toEqual(['sso.connection_test_started', 'sso.connection_tested']);
    expect(JSON.stringify(events)).not.toContain(grace.email);
  });

  it('names the account a linked identity or an existing verified address reaches, and refusals with their reason', async () => {
    const ownerEmail = h.user('acme', 'owner').email;
    const ownerId = await h.userId(ownerEmail);
    // An address outside the org's verified domains is refused, as the sign-in would refuse it.
    const outsider = person({ email: `someone@elsewhere-${newId().slice(0, 6)}.example` });
    const refusedRun = await run(owner, outsider);
    const refused = (await readTest(owner, refusedRun.testId)).json<SsoTestView>();
    expect(refused.signIn).toMatchObject({ outcome: 'refused', detail: 'the email address is not in a domain this organization has verified' });
    // An address the IdP did not verify reaches nobody either.
    const unverified = (await readTest(owner, (await run(owner, person({ email_verified: false }))).testId)).json<SsoTestView>();
    expect(unverified.signIn?.outcome).toBe('refused');
    // An identity already linked signs in as its account.
    const linked = person();
    await h.t.owner.query('insert into sso_identities (org_id, connection_id, issuer, subject, user_id, email, linked_at) values ($1, $2, $3, $4, $5, $6, now())', [
      acme, connection, idp.issuer, linked.sub, ownerId, '',
    ]);
    const signsIn = (await readTest(owner, (await run(owner, linked)).testId)).json<SsoTestView>();
    expect(signsIn.signIn).toMatchObject({ outcome: 'signs_in', userId: ownerId });
  });

  it('shows the JIT membership a sign-in gives an existing account that is not a member yet, and none when JIT is off', async () => {
    const fresh = await h.cookieFor(h.user('acme', 'owner').email);
    const connect = async (jitRole: string | null) => {
      const c = await call(h, 'POST', `/api/orgs/${acme}/sso/connections`, {
        cookie: fresh, payload: { kind: 'oidc', name: `JIT ${jitRole}`, issuer: idp.issuer, clientId: 'palisade', clientSecret: SECRET, ...(jitRole ? { jitRole } : {}) },
      });
      expect(c.statusCode, c.body).toBe(201);
      return c.json<{ id: string }>().id;
    };
    const withJit = await connect('viewer');
    const withoutJit = await connect(null);
    const preview = async (id: string, who: IdpAccount) => {
      const started = await startTest(owner, id, acme, { returnTo: '/settings/sso' });
      expect(started.statusCode, started.body).toBe(201);
      const { testId, location } = started.json<{ testId: string; location: string }>();
      const url = await signInAtIdp(location, who.sub, `${ORIGIN}${CALLBACK}`);
      expect((await call(h, 'GET', `${url.pathname}${url.search}`, { cookie: `${FLOW}=${flowOf(started)}` })).statusCode).toBe(302);
      return (await readTest(owner, testId, id)).json<SsoTestView>().signIn;
    };
    // An account with a verified address in the org's domain, not a member of the org.
    const outsider = person();
    const outsiderId = newId();
    await h.insertUser({ id: outsiderId, email: outsider.email!, name: 'Outsider', verified: true });
    const before = await count('memberships');
    expect(await preview(withJit, outsider)).toMatchObject({ outcome: 'links_account', userId: outsiderId, role: 'viewer', detail: expect.stringContaining('not a member') });
    expect(await preview(withoutJit, outsider)).toMatchObject({ outcome: 'links_account', userId: outsiderId, role: null, detail: expect.stringContaining('no JIT role') });
    // Linked already but removed from the org since: the sign-in adds it back with the JIT role.
    await h.t.owner.query('insert into sso_identities (org_id, connection_id, issuer, subject, user_id, email, linked_at) values ($1, $2, $3, $4, $5, $6, now())', [
      acme, withJit, idp.issuer, outsider.sub, outsiderId, '',
    ]);
    expect(await preview(withJit, outsider)).toMatchObject({ outcome: 'signs_in', userId: outsiderId, role: 'viewer', detail: expect.stringContaining('not a member') });
    // A member already: the sign-in changes no role, so none is shown.
    const insider = person();
    const insiderId = newId();
    await h.insertUser({ id: insiderId, email: insider.email!, name: 'Insider', verified: true });
    await h.t.owner.query('insert into memberships (org_id, user_id, role, restricted) values ($1, $2, $3, false)', [acme, insiderId, 'member']);
    const member = await preview(withJit, insider);
    expect(member).toMatchObject({ outcome: 'links_account', userId: insiderId, role: null });
    expect(member?.detail).not.toContain('member of this organization');
    // Previews only: the outsider is still no member.
    expect(await count('memberships')).toBe(before + 1);
    expect(await h.t.owner.query('select 1 from memberships where org_id = $1 and user_id = $2', [acme, outsiderId])).toHaveLength(0);
  });

  it('records a tampered callback as a failed run, with the reason', async () => {
    const { back, testId } = await run(owner, person(), (u) => u.searchParams.set('state', 'x'.repeat(43)));
    expect(back.statusCode, back.body).toBe(302);
    expect(sessionFrom(back)).toBeFalsy();
    const view = (await readTest(owner, testId)).json<SsoTestView>();
    expect(view.status).toBe('failed');
    expect(view.claims).toBeNull();
    expect(view.reason).toMatch(/identity provider|ID token|sign-in/);
  });

  it('refuses a test run\u2019s callback replayed with its copied cookie, and audits the replay', async () => {
    const started = await startTest(owner, connection, acme, { returnTo: '/settings/sso' });
    const { testId, location } = started.json<{ testId: string; location: string }>();
    const url = await signInAtIdp(location, person().sub, `${ORIGIN}${CALLBACK}`);
    const cookie = `${FLOW}=${flowOf(started)}`;
    expect((await call(h, 'GET', `${url.pathname}${url.search}`, { cookie })).statusCode).toBe(302);
    // Before this fix the second answer wrote nothing and the route broke its audit contract (500).
    const replay = await call(h, 'GET', `${url.pathname}${url.search}`, { cookie });
    expect(replay.statusCode, replay.body).toBe(401);
    expect(replay.json<Problem>().detail).toMatch(/already ended/);
    expect(sessionFrom(replay)).toBeFalsy();
    expect((await readTest(owner, testId)).json<SsoTestView>().status).toBe('succeeded');
  });

  it('lets only the admin who started a run read it, for ten minutes; a test flow never signs in', async () => {
    const { back, testId } = await run(owner, person());
    expect(back.statusCode).toBe(302);
    // Another admin of the same org holds sso:manage but did not start it.
    const admin = await h.cookieFor(h.user('acme', 'admin').email);
    const other = await readTest(admin, testId);
    expect(other.statusCode, other.body).toBe(404);
    // Another org's admin reaches neither the connection nor the run.
    const globexOwner = await h.cookieFor(h.user('globex', 'owner').email);
    expect((await call(h, 'GET', `/api/orgs/${acme}/sso/connections/${connection}/tests/${testId}`, { cookie: globexOwner })).statusCode).toBe(404);
    expect((await startTest(globexOwner, connection, h.orgId('globex'))).statusCode).toBe(404);
    // A member without sso:manage cannot start one.
    const member = await h.cookieFor(h.user('acme', 'member').email);
    expect((await startTest(member)).statusCode).toBe(403);
    // The same id under another connection is not it.
    expect((await readTest(owner, testId, newId())).statusCode).toBe(404);
    h.clock.advance(11 * 60_000);
    expect((await readTest(owner, testId)).statusCode).toBe(404);
  });

  it('refuses a connection that is not the org\u2019s, and an IdP that cannot be discovered, with a 4xx', async () => {
    // The body is optional: a bare POST starts a run that comes back to /.
    const bare = await call(h, 'POST', `/api/orgs/${acme}/sso/connections/${connection}/test`, { cookie: owner });
    expect(bare.statusCode, bare.body).toBe(201);
    const unknown = await startTest(owner, newId());
    expect(unknown.statusCode).toBe(404);
    // A fresh sign-in: adding a connection needs a recent proof of identity.
    const fresh = await h.cookieFor(h.user('acme', 'owner').email);
    const broken = await call(h, 'POST', `/api/orgs/${acme}/sso/connections`, {
      cookie: fresh, payload: { kind: 'oidc', name: 'Soon gone', issuer: idp.issuer, clientId: 'palisade', clientSecret: SECRET },
    });
    expect(broken.statusCode, broken.body).toBe(201);
    const brokenId = broken.json<{ id: string }>().id;
    // The IdP's document moves away after the connection was saved.
    await h.t.owner.query(`update sso_connections set settings = jsonb_set(settings, '{issuer}', '"http://127.0.0.1:9/nowhere"'), updated_at = now() where id = $1`, [brokenId]);
    const res = await startTest(owner, brokenId);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.json<Problem>().code).toBe('validation_failed');
  });

  /** Start a link as `cookie`, sign in at the IdP as `who`, come back (after `between`, if given). */
  async function link(cookie: string, who: IdpAccount, between?: () => Promise<void>): Promise<LightMyRequestResponse> {
    const started = await call(h, 'POST', `/api/orgs/${acme}/sso/connections/${connection}/link`, { cookie, payload: { returnTo: '/account' } });
    expect(started.statusCode, started.body).toBe(201);
    const url = await signInAtIdp(started.json<{ location: string }>().location, who.sub, `${ORIGIN}${CALLBACK}`);
    await between?.();
    return call(h, 'GET', `${url.pathname}${url.search}`, { cookie: `${FLOW}=${flowOf(started)}; ${cookie}` });
  }
  const linkedTo = async (sub: string) => (await h.t.owner.query<{ user_id: string }>('select user_id from sso_identities where subject = $1', [sub])).map((r) => r.user_id);
  const enable = async () => {
    const fresh = await h.cookieFor(h.user('acme', 'owner').email);
    expect((await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${connection}`, { cookie: fresh, payload: { enabled: true } })).statusCode).toBe(200);
  };

  it('links a signed-in member to an IdP identity whose address differs, and that identity then signs them in', async () => {
    await enable();
    const memberEmail = h.user('acme', 'member').email;
    const memberId = await h.userId(memberEmail);
    const cookie = await h.cookieFor(memberEmail);
    // Not in a verified domain, not even verified by the IdP: the session proves the account.
    const personal = person({ email: `ada.personal@elsewhere-${newId().slice(0, 6)}.example`, email_verified: false });
    const back = await link(cookie, personal);
    expect(back.statusCode, back.body).toBe(302);
    expect(back.headers.location).toBe('/account?sso_linked=1');
    expect(sessionFrom(back)).toBeFalsy();
    expect(await linkedTo(personal.sub)).toEqual([memberId]);
    const [event] = await auditSelect<{ details: { via: string } }>(h, ['details'], `where action = 'sso.identity_linked' and target_id = $1 order by seq desc limit 1`, [memberId]);
    expect(event?.details.via).toBe('session');

    const signIn = await call(h, 'GET', `/api/auth/sso/start?org=${acme}&connection=${connection}`);
    expect(signIn.statusCode, signIn.body).toBe(302);
    const url = await signInAtIdp(String(signIn.headers.location), personal.sub, `${ORIGIN}${CALLBACK}`);
    const res = await call(h, 'GET', `${url.pathname}${url.search}`, { cookie: `${FLOW}=${flowOf(signIn)}` });
    expect(res.statusCode, res.body).toBe(302);
    const me = await call(h, 'GET', '/api/me', { cookie: sessionFrom(res) as string });
    expect(me.json<{ user: { id: string } }>().user.id).toBe(memberId);
  });

  it('refuses a link whose session ended before the IdP answered, and an identity already linked to someone else', async () => {
    const viewerEmail = h.user('acme', 'viewer').email;
    const cookie = await h.cookieFor(viewerEmail);
    const someone = person({ email: `x@elsewhere-${newId().slice(0, 6)}.example` });
    const ended = await link(cookie, someone, async () => {
      expect((await call(h, 'POST', '/api/auth/logout', { cookie })).statusCode).toBe(204);
    });
    expect(ended.statusCode, ended.body).toBe(401);
    expect(ended.json<Problem>().code).toBe('sso_failed');
    const [refusal] = await h.t.owner.query<{ result: string }>("select result from audit_events where action = 'auth.sso_failed' order by at desc, seq desc limit 1");
    expect(refusal?.result).toBe('failure');
    expect(await linkedTo(someone.sub)).toEqual([]);

    // The admin's identity at this IdP cannot be taken over by linking it from another account.
    const ownerIdentity = person();
    const ownerId = await h.userId(h.user('acme', 'admin').email);
    await h.t.owner.query('insert into sso_identities (org_id, connection_id, issuer, subject, user_id, email, linked_at) values ($1, $2, $3, $4, $5, $6, now())', [
      acme, connection, idp.issuer, ownerIdentity.sub, ownerId, '',
    ]);
    const taken = await link(await h.cookieFor(viewerEmail), ownerIdentity);
    expect(taken.statusCode, taken.body).toBe(401);
    expect(taken.json<Problem>().detail).toContain('linked to another account');
    expect(await linkedTo(ownerIdentity.sub)).toEqual([ownerId]);
  });

  it('needs a fresh proof of identity to start a link, and membership of the org', async () => {
    const cookie = await h.cookieFor(h.user('acme', 'member').email);
    h.clock.advance(11 * 60_000);
    const stale = await call(h, 'POST', `/api/orgs/${acme}/sso/connections/${connection}/link`, { cookie, payload: {} });
    expect(stale.statusCode, stale.body).toBe(403);
    expect(stale.json<Problem>().code).toBe('step_up_required');
    const outsider = await h.cookieFor(h.user('globex', 'member').email);
    expect((await call(h, 'POST', `/api/orgs/${acme}/sso/connections/${connection}/link`, { cookie: outsider, payload: {} })).statusCode).toBe(404);
    expect((await call(h, 'POST', `/api/orgs/${acme}/sso/connections/${newId()}/link`, { cookie: await h.cookieFor(h.user('acme', 'member').email), payload: {} })).statusCode).toBe(404);
  });
});
