import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../crypto/index.js';
import { createTestApp, ORIGIN, type Problem, type TestApp } from '../../../test/support/app.js';
import { mailTo } from '../../../test/support/accounts.js';
import { call, code, sessionFrom } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { startLoopbackDns, type LoopbackDns } from '../../../test/support/dns.js';
import { enrollTotp, login, nextCode, verifyMfa } from '../../../test/support/mfa.js';
import { signInAtIdp, startOidcProvider, type IdpAccount, type LoopbackIdp } from '../../../test/support/oidc.js';
import { ENFORCEMENT_CLIENT, enforceableOrg, ssoSessionFor } from '../../../test/support/sso-enforcement.js';
import { passwordUser } from '../../../test/support/users.js';
import { auditSelect } from '../../../test/support/evidence.js';

const CALLBACK = '/api/auth/sso/oidc/callback';
const HOUR = 3_600_000;

/**
 * SSO enforcement: an org's verified domains sign in through its IdP only; turning it on ends the
 * other sessions of their users; up to three owners keep a break-glass way in (password AND second
 * factor, an hour at most, audited, the other owners mailed).
 */
describe.each(ENGINES)('SSO enforcement on %s', (engine) => {
  let h: TestApp;
  let idp: LoopbackIdp;
  let dns: LoopbackDns;
  const accounts = new Map<string, IdpAccount>();

  const alive = async (cookie: string) => (await call(h, 'GET', '/api/me', { cookie })).statusCode === 200;
  const ssoRequired = (res: LightMyRequestResponse, email: string) => {
    expect(res.statusCode, res.body).toBe(403);
    const p = res.json<Problem & { ssoStart?: string }>();
    expect(p.code).toBe('sso_required');
    expect(p.ssoStart).toBe(`/api/auth/sso/start?email=${encodeURIComponent(email)}`);
    expect(sessionFrom(res)).toBeFalsy();
  };
  const events = (orgId: string, action: string) =>
    auditSelect<{ details: Record<string, unknown>; result: string; target_id: string | null }>(h, ['details', 'result', 'target_id'], `where org_id = $1 and action = $2 order by seq`, [orgId, action]);

  /** A real SSO sign-in at `connectionId` through the loopback IdP as `who`. */
  async function ssoSignIn(who: IdpAccount, query: string): Promise<LightMyRequestResponse> {
    accounts.set(who.sub, who);
    const start = await call(h, 'GET', `/api/auth/sso/start?${query}`);
    expect(start.statusCode, start.body).toBe(302);
    const flow = start.cookies.find((c) => c.name === '__Host-palisade_sso')?.value ?? '';
    const back = await signInAtIdp(String(start.headers.location), who.sub, `${ORIGIN}${CALLBACK}`);
    return call(h, 'GET', `${back.pathname}${back.search}`, { cookie: `__Host-palisade_sso=${flow}` });
  }

  beforeAll(async () => {
    idp = await startOidcProvider({ clients: [{ ...ENFORCEMENT_CLIENT, redirect_uris: [`${ORIGIN}${CALLBACK}`] }], accounts });
    dns = await startLoopbackDns();
    h = await createTestApp(engine, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true', DNS_SERVERS: dns.server } });
  });
  afterAll(async () => {
    await h?.close();
    await idp?.close();
    await dns?.close();
  });

  it('is switched on only with a verified domain and an enabled connection, by sso:manage with a step-up', async () => {
    const org = await enforceableOrg(h, idp);
    // A member holds no sso:manage.
    const member = await org.person('member');
    const asMember = await call(h, 'PUT', `/api/orgs/${org.orgId}/sso/enforcement`, { cookie: await h.cookieFor(member.email), payload: { enforced: true } });
    expect(asMember.statusCode).toBe(403);
    // An admin holds sso:manage, but switching it on decides how the owners sign in: owners only.
    // Outside the domain (example.test): enforcement does not end their session.
    const admin = await passwordUser(h, org.orgId, 'admin');
    const adminCookie = await h.cookieFor(admin.email);
    const asAdmin = await call(h, 'PUT', `/api/orgs/${org.orgId}/sso/enforcement`, { cookie: adminCookie, payload: { enforced: true } });
    expect(code(asAdmin)).toBe('privilege_escalation');
    // No enabled connection: nobody could sign in.
    await call(h, 'PATCH', `/api/orgs/${org.orgId}/sso/connections/${org.connectionId}`, { cookie: org.ownerCookie, payload: { enabled: false } });
    const noConnection = await org.enforce(true);
    expect(code(noConnection)).toBe('conflict');
    expect(noConnection.json<Problem>().detail).toMatch(/enable an SSO connection/);
    await call(h, 'PATCH', `/api/orgs/${org.orgId}/sso/connections/${org.connectionId}`, { cookie: org.ownerCookie, payload: { enabled: true } });
    // No verified domain: nobody to enforce it on.
    await h.t.owner.query('delete from verified_domains where org_id = $1', [org.orgId]);
    expect(code(await org.enforce(true))).toBe('conflict');
    await h.t.owner.query('insert into verified_domains (domain, org_id) values ($1, $2)', [org.domain, org.orgId]);
    const on = await org.enforce(true);
    expect(on.statusCode, on.body).toBe(200);
    expect(on.json()).toMatchObject({ enforced: true, domains: [org.domain], breakGlassOwners: [] });
    expect(code(await org.enforce(true))).toBe('conflict');
    const read = await call(h, 'GET', `/api/orgs/${org.orgId}/sso/enforcement`, { cookie: org.ownerCookie });
    expect(read.json()).toMatchObject({ enforced: true, domains: [org.domain] });
    expect(await events(org.orgId, 'sso.enforcement_enabled')).toHaveLength(1);
    // Switching it off locks nobody out: an admin may.
    const offByAdmin = await call(h, 'PUT', `/api/orgs/${org.orgId}/sso/enforcement`, { cookie: adminCookie, payload: { enforced: false } });
    expect(offByAdmin.statusCode, offByAdmin.body).toBe(200);
  });

  it('ends the sessions of the domain\u2019s users that its SSO did not open, and no others', async () => {
    const org = await enforceableOrg(h, idp);
    const member = await org.person('member');
    const passwordSession = await h.login(member);
    const ssoSession = await ssoSessionFor(h, org, member.id);
    // Stored in another spelling of the domain (an IdP's: upper case, a trailing dot): the same user base.
    const oddId = newId();
    await h.insertUser({ id: oddId, email: `Odd-${oddId.slice(0, 6)}@${org.domain.toUpperCase()}.`, name: 'Odd', verified: true });
    const oddSession = await h.cookieFor(`Odd-${oddId.slice(0, 6)}@${org.domain.toUpperCase()}.`);
    // Someone outside the domain (a contractor at example.test) keeps their session.
    const outsider = await passwordUser(h, org.orgId, 'member');
    const outsiderSession = await h.login(outsider);
    const on = await org.enforce(true);
    expect(on.statusCode, on.body).toBe(200);
    expect(on.json<{ sessionsEnded: number }>().sessionsEnded).toBe(2);
    expect(await alive(passwordSession)).toBe(false);
    expect(await alive(oddSession)).toBe(false);
    expect(await alive(ssoSession)).toBe(true);
    expect(await alive(outsiderSession)).toBe(true);
    expect(await alive(org.ownerCookie)).toBe(true);
    const [evidence] = await events(org.orgId, 'sso.enforcement_enabled');
    expect(evidence?.details).toMatchObject({ domains: [org.domain], sessionsEnded: 2 });
    const [row] = await h.t.owner.query<{ revoked_reason: string }>("select revoked_reason from sessions where user_id = $1 and auth_method = 'password'", [member.id]);
    expect(row?.revoked_reason).toBe('sso_enforced');
  });

  it('refuses every local way in for the domain with sso_required naming the SSO start, and lets its SSO in', async () => {
    const org = await enforceableOrg(h, idp);
    const member = await org.person('member');
    // Begun before enforcement: a reset link and a pending second step.
    const withTotp = await org.person('member');
    const totp = await enrollTotp(h, withTotp);
    const pending = await login(h, withTotp.email, withTotp.password);
    const mfaToken = pending.json<{ mfaToken: string }>().mfaToken;
    expect((await call(h, 'POST', '/api/auth/password-reset/request', { payload: { email: member.email } })).statusCode).toBe(202);
    const resetToken = /pal_pwr_[A-Za-z0-9_-]{43}/.exec((await mailTo(h, member.email)).at(-1)?.body ?? '')?.[0] ?? '';
    expect(resetToken).not.toBe('');
    expect((await org.enforce(true)).statusCode).toBe(200);

    ssoRequired(await login(h, member.email, member.password), member.email);
    // By domain, before any password check: a wrong password or an unknown address gets the same.
    ssoRequired(await login(h, member.email, 'wrong password entirely'), member.email);
    const nobody = `nobody-${newId().slice(0, 6)}@${org.domain}`;
    ssoRequired(await login(h, nobody, 'whatever it is'), nobody);
    // One spelling: a dotted capital I (lower-cased to i + U+0307 by JavaScript, to i by PostgreSQL) is no address.
    const [local, host] = member.email.split('@') as [string, string];
    const dotted = await login(h, `${local}@\u0130${host}`, 'wrong password entirely');
    expect(dotted.statusCode, dotted.body).toBe(400);
    ssoRequired(await call(h, 'POST', '/api/auth/register', { payload: { email: nobody, password: 'a-long-enough-passphrase-42', name: 'N' } }), nobody);
    ssoRequired(await call(h, 'POST', '/api/auth/password-reset/request', { payload: { email: member.email } }), member.email);
    ssoRequired(await call(h, 'POST', '/api/auth/magic-link', { payload: { email: member.email } }), member.email);
    ssoRequired(await call(h, 'POST', '/api/auth/password-reset/confirm', { payload: { token: resetToken, password: 'a-new-long-passphrase-77' } }), member.email);
    const [pw] = await h.t.owner.query<{ password_changed_at: Date }>('select password_changed_at from users where id = $1', [member.id]);
    ssoRequired(await verifyMfa(h, mfaToken, { code: nextCode(h, totp.secret) }), withTotp.email);
    // The refused second step is evidence in the enforcing org's trail.
    const refusals = await events(org.orgId, 'auth.sso_required');
    expect(refusals.some((e) => e.target_id === withTotp.id && e.result === 'failure')).toBe(true);
    // Nothing was written by the refused reset.
    const [after] = await h.t.owner.query<{ password_changed_at: Date }>('select password_changed_at from users where id = $1', [member.id]);
    expect(after?.password_changed_at).toEqual(pw?.password_changed_at);

    // The org's own SSO still signs the member in.
    const viaSso = await ssoSignIn({ sub: `sub-${newId()}`, email: member.email, email_verified: true }, `email=${encodeURIComponent(member.email)}`);
    expect(viaSso.statusCode, viaSso.body).toBe(302);
    expect(sessionFrom(viaSso)).toBeTruthy();
  });

  it('refuses an SSO sign-in of the domain\u2019s user through another org\u2019s connection', async () => {
    const org = await enforceableOrg(h, idp);
    const other = await enforceableOrg(h, idp);
    const member = await org.person('member');
    await h.t.owner.query('insert into memberships (org_id, user_id, role) values ($1, $2, $3)', [other.orgId, member.id, 'member']);
    const sub = `sub-${newId()}`;
    // Linked at the other org's IdP before (a sign-in that proved both sides).
    await h.t.owner.query('insert into sso_identities (org_id, connection_id, issuer, subject, user_id, linked_at) values ($1, $2, $3, $4, $5, now())', [
      other.orgId, other.connectionId, idp.issuer, sub, member.id,
    ]);
    expect((await org.enforce(true)).statusCode).toBe(200);
    // Removed from the other org since, still linked at its IdP (whose connection provisions members).
    await h.t.owner.query('delete from memberships where org_id = $1 and user_id = $2', [other.orgId, member.id]);
    const res = await ssoSignIn({ sub, email: member.email, email_verified: true }, `org=${other.orgId}&connection=${other.connectionId}`);
    ssoRequired(res, member.email);
    // Refused before anything was written: no membership came back, and the refusal is on the enforcing org's record.
    expect(await h.t.owner.query('select 1 from memberships where org_id = $1 and user_id = $2', [other.orgId, member.id])).toHaveLength(0);
    expect((await events(org.orgId, 'auth.sso_required')).some((e) => e.details.ssoOrgId === other.orgId)).toBe(true);
  });

  it('lets no transaction bound to one org write another org\u2019s enforcement', async () => {
    const a = await enforceableOrg(h, idp);
    const b = await enforceableOrg(h, idp);
    expect((await b.enforce(true)).statusCode).toBe(200);
    const changed = await h.t.db.withTenant({ orgId: a.orgId }, async (tx) => {
      const r = await sql`update sso_enforcement set enforced_since = null where org_id = ${b.orgId}`.execute(tx);
      return Number(r.numAffectedRows ?? 0n);
    });
    expect(changed).toBe(0);
    await expect(h.t.db.withTenant({ orgId: a.orgId }, (tx) => sql`insert into sso_enforcement (org_id) values (${h.orgId('globex')})`.execute(tx))).rejects.toThrow();
    const read = await call(h, 'GET', `/api/orgs/${b.orgId}/sso/enforcement`, { cookie: b.ownerCookie });
    expect(read.json()).toMatchObject({ enforced: true });
  });

  it('a domain verified while enforcement is on ends its users\u2019 other sessions at once', async () => {
    const org = await enforceableOrg(h, idp);
    expect((await org.enforce(true)).statusCode).toBe(200);
    const second = `enf2-${newId().slice(0, 8)}.example`;
    const id = newId();
    const email = `late-${id.slice(0, 6)}@${second}`;
    await h.insertUser({ id, email, name: 'Late', verified: true });
    const session = await h.cookieFor(email);
    const claim = await call(h, 'POST', `/api/orgs/${org.orgId}/domains`, { cookie: org.ownerCookie, payload: { domain: second } });
    expect(claim.statusCode, claim.body).toBe(201);
    const d = claim.json<{ id: string; verification: { name: string; value: string } }>();
    dns.zone.set(d.verification.name, { txt: [[d.verification.value]] });
    const verified = await call(h, 'POST', `/api/orgs/${org.orgId}/domains/${d.id}/verify`, { cookie: org.ownerCookie });
    expect(verified.statusCode, verified.body).toBe(200);
    expect(await alive(session)).toBe(false);
    expect((await events(org.orgId, 'sso.sessions_ended')).at(-1)?.details).toMatchObject({ domain: second, sessionsEnded: 1 });
  });

  it('names at most three break-glass owners, owners only, and only an owner may name them', async () => {
    const org = await enforceableOrg(h, idp);
    const admin = await org.person('admin');
    const owners = [await org.person('owner'), await org.person('owner'), await org.person('owner'), await org.person('owner')];
    const put = (cookie: string, ids: string[]) => call(h, 'PUT', `/api/orgs/${org.orgId}/sso/break-glass`, { cookie, payload: { owners: ids } });
    expect((await put(await h.cookieFor(admin.email), [owners[0]?.id ?? ''])).statusCode).toBe(403);
    const notOwner = await put(org.ownerCookie, [admin.id]);
    expect(code(notOwner)).toBe('validation_failed');
    expect(code(await put(org.ownerCookie, owners.map((o) => o.id)))).toBe('validation_failed');
    const ok = await put(org.ownerCookie, owners.slice(0, 3).map((o) => o.id));
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json<{ breakGlassOwners: { userId: string }[] }>().breakGlassOwners.map((o) => o.userId)).toEqual(owners.slice(0, 3).map((o) => o.id));
    const [changed] = await events(org.orgId, 'sso.break_glass_owners_changed');
    expect(changed?.details).toMatchObject({ before: [], after: owners.slice(0, 3).map((o) => o.id) });
  });

  it('break-glass: a named owner signs in with password AND second factor, for an hour, audited, the other owners mailed', async () => {
    const org = await enforceableOrg(h, idp);
    const keeper = await org.person('owner');
    const otherOwner = await org.person('owner');
    const unnamed = await org.person('owner');
    const noFactor = await org.person('owner');
    const totp = await enrollTotp(h, keeper);
    await enrollTotp(h, unnamed);
    expect((await call(h, 'PUT', `/api/orgs/${org.orgId}/sso/break-glass`, { cookie: org.ownerCookie, payload: { owners: [keeper.id, noFactor.id] } })).statusCode).toBe(200);
    const breakGlass = (who: { email: string; password: string }) => call(h, 'POST', '/api/auth/break-glass', { payload: { email: who.email, password: who.password } });
    // Not under enforcement yet: the usual sign-in is the way.
    expect(code(await breakGlass(keeper))).toBe('conflict');
    expect((await org.enforce(true)).statusCode).toBe(200);

    expect(code(await breakGlass({ email: keeper.email, password: 'not the password at all' }))).toBe('invalid_credentials');
    expect(code(await breakGlass(unnamed))).toBe('forbidden');
    const bare = await breakGlass(noFactor);
    expect(code(bare)).toBe('forbidden');
    expect(bare.json<Problem>().detail).toMatch(/second factor/);

    const first = await breakGlass(keeper);
    expect(first.statusCode, first.body).toBe(200);
    expect(first.json()).toMatchObject({ mfaRequired: true });
    expect(sessionFrom(first)).toBeFalsy();
    const done = await verifyMfa(h, first.json<{ mfaToken: string }>().mfaToken, { code: nextCode(h, totp.secret) });
    expect(done.statusCode, done.body).toBe(200);
    const cookie = sessionFrom(done);
    expect(cookie).toBeTruthy();
    expect(done.cookies.find((c) => c.name === h.built.cookie.name)?.maxAge).toBe(3600);
    expect(await alive(cookie as string)).toBe(true);

    const [evidence] = await events(org.orgId, 'auth.break_glass');
    expect(evidence).toMatchObject({ target_id: keeper.id, result: 'success' });
    const mailed = await mailTo(h, otherOwner.email);
    expect(mailed.at(-1)?.subject).toMatch(/break-glass/);
    expect(mailed.at(-1)?.body).toContain(keeper.email);
    expect((await mailTo(h, keeper.email)).some((m) => /break-glass/.test(m.subject))).toBe(false);
    const [row] = await h.t.owner.query<{ break_glass_org_id: string; created_at: Date; absolute_expires_at: Date }>(
      'select break_glass_org_id, created_at, absolute_expires_at from sessions where user_id = $1 and revoked_at is null and break_glass_org_id is not null', [keeper.id]);
    expect(row?.break_glass_org_id).toBe(org.orgId);
    expect((row?.absolute_expires_at.getTime() ?? 0) - (row?.created_at.getTime() ?? 0)).toBeLessThanOrEqual(HOUR);
    h.clock.advance(HOUR + 60_000);
    expect(await alive(cookie as string)).toBe(false);
  });

  it('a break-glass session ends when its owner is taken off the list', async () => {
    const org = await enforceableOrg(h, idp);
    const keeper = await org.person('owner');
    const totp = await enrollTotp(h, keeper);
    const put = (owners: string[]) => call(h, 'PUT', `/api/orgs/${org.orgId}/sso/break-glass`, { cookie: org.ownerCookie, payload: { owners } });
    expect((await put([keeper.id])).statusCode).toBe(200);
    expect((await org.enforce(true)).statusCode).toBe(200);
    const first = await call(h, 'POST', '/api/auth/break-glass', { payload: { email: keeper.email, password: keeper.password } });
    const done = await verifyMfa(h, first.json<{ mfaToken: string }>().mfaToken, { code: nextCode(h, totp.secret) });
    const cookie = sessionFrom(done) as string;
    expect(await alive(cookie)).toBe(true);
    const withdrawn = await put([]);
    expect(withdrawn.statusCode, withdrawn.body).toBe(200);
    expect(await alive(cookie)).toBe(false);
    expect((await events(org.orgId, 'sso.break_glass_owners_changed')).at(-1)?.details).toMatchObject({ sessionsEnded: 1 });
  });

  it('break-glass is checked again at the second step: an owner taken off the list meanwhile gets nothing', async () => {
    const org = await enforceableOrg(h, idp);
    const keeper = await org.person('owner');
    const totp = await enrollTotp(h, keeper);
    expect((await call(h, 'PUT', `/api/orgs/${org.orgId}/sso/break-glass`, { cookie: org.ownerCookie, payload: { owners: [keeper.id] } })).statusCode).toBe(200);
    expect((await org.enforce(true)).statusCode).toBe(200);
    const first = await call(h, 'POST', '/api/auth/break-glass', { payload: { email: keeper.email, password: keeper.password } });
    expect(first.statusCode, first.body).toBe(200);
    expect((await call(h, 'PUT', `/api/orgs/${org.orgId}/sso/break-glass`, { cookie: org.ownerCookie, payload: { owners: [] } })).statusCode).toBe(200);
    const second = await verifyMfa(h, first.json<{ mfaToken: string }>().mfaToken, { code: nextCode(h, totp.secret) });
    expect(code(second)).toBe('forbidden');
    expect(sessionFrom(second)).toBeFalsy();
    expect(await events(org.orgId, 'auth.break_glass')).toHaveLength(0);
  });

  it('keeps the last enabled connection while enforcement is on', async () => {
    const org = await enforceableOrg(h, idp);
    expect((await org.enforce(true)).statusCode).toBe(200);
    const url = `/api/orgs/${org.orgId}/sso/connections/${org.connectionId}`;
    const disable = await call(h, 'PATCH', url, { cookie: org.ownerCookie, payload: { enabled: false } });
    expect(code(disable)).toBe('conflict');
    expect(disable.json<Problem>().detail).toMatch(/turn enforcement off first/);
    expect(code(await call(h, 'DELETE', url, { cookie: org.ownerCookie }))).toBe('conflict');
    const [row] = await h.t.owner.query<{ enabled: boolean }>('select enabled from sso_connections where id = $1', [org.connectionId]);
    expect(row?.enabled).toBe(true);
    expect((await org.enforce(false)).statusCode).toBe(200);
    expect((await call(h, 'DELETE', url, { cookie: org.ownerCookie })).statusCode).toBe(204);
  });

  it('switched off, the domain signs in locally again', async () => {
    const org = await enforceableOrg(h, idp);
    const member = await org.person('member');
    expect((await org.enforce(true)).statusCode).toBe(200);
    ssoRequired(await login(h, member.email, member.password), member.email);
    const off = await org.enforce(false);
    expect(off.statusCode, off.body).toBe(200);
    expect(off.json()).toMatchObject({ enforced: false, enforcedSince: null });
    const back = await login(h, member.email, member.password);
    expect(back.statusCode, back.body).toBe(200);
    expect(await events(org.orgId, 'sso.enforcement_disabled')).toHaveLength(1);
  });
});
