import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../crypto/index.js';
import { createTestApp, ORIGIN, testConfig, type Problem, type TestApp } from '../../../test/support/app.js';
import { call, sessionFrom } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { idpKey, newSamlId, samlForm, TestSamlIdp, type AssertionSpec, type IdpKey } from '../../../test/support/saml.js';
import { secondInstance } from '../../../test/support/instances.js';
import { createSamlFlowSealer } from './saml.js';

const FLOW = '__Host-palisade_saml';
/** The IdP's page posts the form from its own origin: a cross-site POST by design. */
const IDP_ORIGIN = 'https://idp.test';

interface Me {
  user: { id: string; email: string };
  orgs: { id: string; role: string }[];
}

/** SAML sign-in against an IdP that really signs (xml-crypto), every check of the ACS attacked. */
describe.each(ENGINES)('SAML single sign-on on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let domain: string;
  let idp: TestSamlIdp;
  let globexIdp: TestSamlIdp;
  let forger: IdpKey;
  /** acme's connection (SP-initiated only), an IdP-initiated one, a response-unsigned one, globex's. */
  let conn: string;
  let idpInitiated: string;
  let assertionOnly: string;
  let globexConn: string;
  const flows = createSamlFlowSealer(testConfig().sessionSecret);

  const acsPath = (id: string) => `/api/auth/sso/saml/${id}/acs`;
  const sp = (id: string) => ({ acsUrl: `${ORIGIN}${acsPath(id)}`, audience: `${ORIGIN}/api/auth/sso/saml/${id}/metadata` });
  const post = (id: string, body: string, flow?: string, headers: Record<string, string> = {}) =>
    call(h, 'POST', acsPath(id), {
      payload: body,
      headers: { origin: IDP_ORIGIN, 'content-type': 'application/x-www-form-urlencoded', ...(flow ? { cookie: `${FLOW}=${flow}` } : {}), ...headers },
    });
  const email = () => `u-${newId().slice(0, 8)}@${domain}`;

  /** SP-initiated: start, read the AuthnRequest the browser carries to the IdP, keep the flow cookie. */
  async function begin(who: string, id = conn): Promise<{ requestId: string; flow: string }> {
    const res = await call(h, 'GET', `/api/auth/sso/start?org=${acme}&connection=${id}&returnTo=/console`);
    expect(res.statusCode, res.body).toBe(302);
    const location = String(res.headers.location);
    expect(location.startsWith(idp.ssoUrl)).toBe(true);
    const req = TestSamlIdp.requestOf(location);
    expect(req.acsUrl).toBe(sp(id).acsUrl);
    expect(req.issuer).toBe(sp(id).audience);
    const cookie = res.cookies.find((c) => c.name === FLOW);
    expect(cookie?.sameSite).toBe('None');
    expect(cookie?.secure).toBe(true);
    expect(cookie?.httpOnly).toBe(true);
    void who;
    return { requestId: req.id, flow: cookie?.value ?? '' };
  }
  /** The IdP's answer for `who` to a request, as a posted form. */
  const answer = (who: string, requestId: string | undefined, over: Partial<AssertionSpec> = {}, id = conn) =>
    idp.response({ ...sp(id), nameId: who, inResponseTo: requestId, attributes: { email: who, name: 'Ada SAML' }, ...over });

  const refused = (res: LightMyRequestResponse) => {
    expect(res.statusCode, res.body).toBe(401);
    expect(res.json<Problem>().code).toBe('sso_failed');
    expect(sessionFrom(res)).toBeFalsy();
    return res.json<Problem>().detail ?? '';
  };
  const me = async (res: LightMyRequestResponse): Promise<Me> => {
    const cookie = sessionFrom(res);
    expect(cookie, res.body).toBeTruthy();
    const r = await call(h, 'GET', '/api/me', { cookie: cookie as string });
    expect(r.statusCode, r.body).toBe(200);
    return r.json<Me>();
  };

  async function connect(org: string, payload: object): Promise<string> {
    // An org's oldest enabled connection answers an email: creation times differ.
    h.clock.advance(1000);
    const owner = await h.cookieFor(h.user(org === acme ? 'acme' : 'globex', 'owner').email);
    const c = await call(h, 'POST', `/api/orgs/${org}/sso/connections`, { cookie: owner, payload: { kind: 'saml', name: 'SAML IdP', ...payload } });
    expect(c.statusCode, c.body).toBe(201);
    const id = c.json<{ id: string }>().id;
    const on = await call(h, 'PATCH', `/api/orgs/${org}/sso/connections/${id}`, { cookie: owner, payload: { enabled: true } });
    expect(on.statusCode, on.body).toBe(200);
    return id;
  }

  beforeAll(async () => {
    [forger] = await Promise.all([idpKey('forger')]);
    idp = new TestSamlIdp(`https://idp.test/${newId()}`, await idpKey('acme idp'));
    globexIdp = new TestSamlIdp(`https://idp.test/${newId()}`, await idpKey('globex idp'));
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    domain = `saml-${newId().slice(0, 8)}.example`;
    const ownerId = await h.userId(h.user('acme', 'owner').email);
    await h.t.owner.query('insert into org_domains (org_id, id, domain, record_value, created_by, created_at, verified_at) values ($1, $2, $3, $4, $5, now(), now())', [
      acme, newId(), domain, 'palisade-verification=test', ownerId,
    ]);
    await h.t.owner.query('insert into verified_domains (domain, org_id) values ($1, $2)', [domain, acme]);
    conn = await connect(acme, { metadataXml: idp.metadataXml(), jitRole: 'member' });
    idpInitiated = await connect(acme, { idpEntityId: idp.entityId, ssoUrl: idp.ssoUrl, certificates: [idp.key.certPem], jitRole: 'member', allowIdpInitiated: true });
    assertionOnly = await connect(acme, { metadataXml: idp.metadataXml(), jitRole: 'member', requireSignedResponse: false, allowIdpInitiated: true });
    globexConn = await connect(globex, { metadataXml: globexIdp.metadataXml(), jitRole: 'member' });
  });
  afterAll(async () => h?.close());

  it('signs in SP-initiated: AuthnRequest out, signed response back, a session and a JIT membership', async () => {
    const who = email();
    const { requestId, flow } = await begin(who);
    const res = await post(conn, samlForm(answer(who, requestId)), flow);
    expect(res.statusCode, res.body).toBe(302);
    expect(res.headers.location).toBe('/console');
    const m = await me(res);
    expect(m.user.email).toBe(who);
    expect(m.orgs.find((o) => o.id === acme)?.role).toBe('member');
    const links = await h.t.owner.query<{ issuer: string; subject: string }>('select issuer, subject from sso_identities where connection_id = $1 and subject = $2', [conn, who]);
    expect(links).toEqual([{ issuer: idp.entityId, subject: who }]);
    // The request is spent, the assertion remembered: both in the database, for every instance.
    const spent = await h.t.owner.query<{ used_at: Date | null }>('select used_at from saml_requests where request_id = $1', [requestId]);
    expect(spent[0]?.used_at).toBeTruthy();
  });

  it('serves SP metadata naming the entity id, ACS URL and NameID format; unknown ids are 404', async () => {
    const res = await call(h, 'GET', `/api/auth/sso/saml/${conn}/metadata`);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.headers['content-type']).toContain('application/samlmetadata+xml');
    expect(res.body).toContain(`entityID="${sp(conn).audience}"`);
    expect(res.body).toContain(`Location="${sp(conn).acsUrl}"`);
    expect(res.body).toContain('NameIDFormat');
    expect((await call(h, 'GET', `/api/auth/sso/saml/${newId()}/metadata`)).statusCode).toBe(404);
  });

  it('refuses a tampered NameID, a response signed by another key, and an unsigned assertion inside a signed response', async () => {
    const victim = email();
    let { requestId, flow } = await begin(victim);
    const signed = answer(`x${victim}`, requestId);
    expect(refused(await post(conn, samlForm(signed.replace(`>x${victim}<`, `>${victim}<`)), flow))).toMatch(/signed/);
    ({ requestId, flow } = await begin(victim));
    expect(refused(await post(conn, samlForm(answer(victim, requestId, { key: forger })), flow))).toMatch(/signed/);
    ({ requestId, flow } = await begin(victim));
    expect(refused(await post(conn, samlForm(answer(victim, requestId, { signAssertion: false })), flow))).toMatch(/signed/);
    // Assertion signature alone is not enough where the response must be signed too (the default).
    ({ requestId, flow } = await begin(victim));
    expect(refused(await post(conn, samlForm(answer(victim, requestId, { signResponse: false })), flow))).toMatch(/signed/);
  });

  it('refuses signature wrapping: a second assertion, and the signed assertion moved aside for a forged one', async () => {
    const attacker = email();
    const victim = email();
    // XSW 1: an extra, unsigned assertion for the victim beside the signed one (response signature then broken too).
    let { requestId, flow } = await begin(attacker, assertionOnly);
    const good = answer(attacker, requestId, {}, assertionOnly);
    const evil = idp.unsignedResponse({ ...sp(assertionOnly), nameId: victim, inResponseTo: requestId }).xml;
    const evilAssertion = evil.slice(evil.indexOf('<saml:Assertion'), evil.indexOf('</samlp:Response>'));
    const doubled = good.replace('<saml:Assertion', `${evilAssertion}<saml:Assertion`);
    expect(refused(await post(assertionOnly, samlForm(doubled), flow))).toMatch(/more than one assertion|signed/);
    // XSW 2, on a connection that accepts an assertion-only signature: the forged assertion takes the
    // signed one's place and carries its signature; the signed original is tucked into Extensions.
    ({ requestId, flow } = await begin(attacker, assertionOnly));
    const original = answer(attacker, requestId, { signResponse: false }, assertionOnly);
    const signedAssertion = original.slice(original.indexOf('<saml:Assertion'), original.indexOf('</samlp:Response>'));
    const signature = signedAssertion.slice(signedAssertion.indexOf('<Signature'), signedAssertion.indexOf('</Signature>') + '</Signature>'.length);
    const forged = signedAssertion.replace(signature, '').replace(`>${attacker}<`, `>${victim}<`).replace(`>${attacker}<`, `>${victim}<`)
      .replace(/ID="[^"]+"/, `ID="${newSamlId()}"`).replace('</saml:Issuer>', `</saml:Issuer>${signature}`);
    const moved = original.replace(signedAssertion, forged).replace('<samlp:Status>', `<samlp:Extensions>${signedAssertion}</samlp:Extensions><samlp:Status>`);
    refused(await post(assertionOnly, samlForm(moved), flow));
    const links = await h.t.owner.query('select 1 from sso_identities where subject = $1', [victim]);
    expect(links).toHaveLength(0);
  });

  it('refuses a replayed assertion and a reused or unknown InResponseTo', async () => {
    const who = email();
    const { requestId, flow } = await begin(who);
    const body = samlForm(answer(who, requestId));
    expect((await post(conn, body, flow)).statusCode).toBe(302);
    // The same response again, even with the flow cookie copied: its request is spent (and its
    // assertion id remembered: the IdP-initiated case below shows that check on its own).
    expect(refused(await post(conn, body, flow))).toMatch(/InResponseTo|already used/);
    expect(await h.t.owner.query('select 1 from saml_assertions where connection_id = $1', [conn])).not.toHaveLength(0);
    // A new assertion answering the spent request.
    expect(refused(await post(conn, samlForm(answer(who, requestId)), flow))).toMatch(/InResponseTo/);
    // A request this SP never sent, in a flow cookie forged for it (the browser binding holds, the database does not know it).
    const unknown = newSamlId();
    const forgedFlow = flows.seal({ v: 1, orgId: acme, connectionId: conn, requestId: unknown, returnTo: '/', expiresAt: h.clock.now().getTime() + 60_000 });
    expect(refused(await post(conn, samlForm(answer(who, unknown)), forgedFlow))).toMatch(/InResponseTo/);
    // A response to a request another browser started: no flow cookie here.
    const other = await begin(who);
    expect(refused(await post(conn, samlForm(answer(who, other.requestId))))).toMatch(/did not start/);
  });

  it('refuses an expired assertion, a wrong audience, recipient, destination or issuer', async () => {
    const who = email();
    const cases: [Partial<AssertionSpec>, RegExp][] = [
      [{ notOnOrAfter: -5 * 60_000, notBefore: -10 * 60_000 }, /expired/],
      [{ notBefore: 10 * 60_000, notOnOrAfter: 20 * 60_000 }, /expired|not valid yet/],
      [{ audience: sp(idpInitiated).audience }, /audience/],
      [{ recipient: `${ORIGIN}/elsewhere` }, /Recipient/],
      [{ destination: `${ORIGIN}/elsewhere` }, /Destination/],
      [{ issuer: 'https://idp.test/someone-else' }, /Issuer|could not be validated/],
    ];
    for (const [over, why] of cases) {
      const { requestId, flow } = await begin(who);
      expect(refused(await post(conn, samlForm(answer(who, requestId, over)), flow))).toMatch(why);
    }
  });

  it('refuses comments inside the NameID (the truncation trick) even though the signature still verifies', async () => {
    const attacker = `user@${domain}.evil.example`;
    const { requestId, flow } = await begin(attacker);
    const signed = answer(attacker, requestId);
    const commented = signed.split(`>${attacker}<`).join(`>user@${domain}<!---->.evil.example<`);
    expect(refused(await post(conn, samlForm(commented), flow))).toMatch(/comments/);
  });

  it('refuses IdP-initiated sign-in unless the connection enables it, and keeps enabled ones replay-proof', async () => {
    const who = email();
    expect(refused(await post(conn, samlForm(answer(who, undefined))))).toMatch(/IdP-initiated/);
    const body = samlForm(answer(who, undefined, {}, idpInitiated), '//evil.example/');
    const ok = await post(idpInitiated, body);
    expect(ok.statusCode, ok.body).toBe(302);
    // RelayState is not an open redirect: only a path on this origin.
    expect(ok.headers.location).toBe('/');
    expect((await me(ok)).user.email).toBe(who);
    expect(refused(await post(idpInitiated, body))).toMatch(/already used/);
  });

  it('answers a clear 4xx to what is not a SAML form post: oversized, not base64, not XML, a DOCTYPE, JSON', async () => {
    const bad: [string, number][] = [
      [new URLSearchParams({ SAMLResponse: 'A'.repeat(140 * 1024) }).toString(), 413],
      ['SAMLResponse=%%%not-base64', 400],
      [new URLSearchParams({ SAMLResponse: Buffer.from('not xml at all').toString('base64') }).toString(), 400],
      [samlForm('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&b;</samlp:Response>'), 400],
      ['RelayState=x', 400],
    ];
    for (const [body, status] of bad) {
      const res = await post(conn, body);
      expect(res.statusCode, res.body).toBe(status);
      expect(res.headers['content-type']).toContain('application/problem+json');
    }
    const json = await post(conn, JSON.stringify({ SAMLResponse: 'x' }), undefined, { 'content-type': 'application/json' });
    expect(json.statusCode).toBe(400);
    expect((await post(newId(), samlForm(answer(email(), undefined)))).statusCode).toBe(404);
  });

  it('refuses an acme response posted to another org\u2019s connection', async () => {
    const who = email();
    const res = await post(globexConn, samlForm(answer(who, undefined, {}, idpInitiated)));
    refused(res);
    const memberships = (await h.hasUser(who)) ? await h.t.owner.query('select 1 from memberships m where m.user_id = $1', [await h.userId(who)]) : [];
    expect(memberships).toHaveLength(0);
  });

  it('accepts a response once across two app instances on one database, even posted to both at once', async () => {
    const other = await secondInstance(h);
    try {
      const postTo = (app: typeof h.built.app, body: string, flow?: string) =>
        app.inject({
          method: 'POST', url: acsPath(conn), payload: body,
          headers: { origin: IDP_ORIGIN, 'content-type': 'application/x-www-form-urlencoded', ...(flow ? { cookie: `${FLOW}=${flow}` } : {}) },
        });
      // SP-initiated: started on one instance, the same answer posted to both concurrently.
      const who = email();
      const { requestId, flow } = await begin(who);
      const body = samlForm(answer(who, requestId));
      const results = await Promise.all([postTo(h.built.app, body, flow), postTo(other.built.app, body, flow)]);
      expect(results.map((r) => r.statusCode).sort()).toEqual([302, 401]);
      // IdP-initiated: accepted by one instance, refused by the other (the cache is the database's).
      const again = email();
      const unsolicited = samlForm(answer(again, undefined, {}, idpInitiated));
      const first = await other.built.app.inject({ method: 'POST', url: acsPath(idpInitiated), payload: unsolicited, headers: { origin: IDP_ORIGIN, 'content-type': 'application/x-www-form-urlencoded' } });
      expect(first.statusCode, first.body).toBe(302);
      expect(refused(await post(idpInitiated, unsolicited))).toMatch(/already used/);
    } finally {
      await other.close();
    }
  });

  it('accepts the next certificate during a rollover, and refuses the old one once it is removed', async () => {
    const next = await idpKey('acme idp next');
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const patch = (certificates: string[]) => call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${idpInitiated}`, { cookie: owner, payload: { certificates } });
    const who = email();
    expect((await patch([idp.key.certPem, next.certPem])).statusCode).toBe(200);
    const rolled = await post(idpInitiated, samlForm(answer(who, undefined, { key: next }, idpInitiated)));
    expect(rolled.statusCode, rolled.body).toBe(302);
    const changed = await patch([next.certPem]);
    expect(changed.json<{ saml: { certificates: string[] } }>().saml.certificates).toHaveLength(1);
    expect(refused(await post(idpInitiated, samlForm(answer(who, undefined, {}, idpInitiated))))).toMatch(/signed/);
    expect((await patch([idp.key.certPem])).statusCode).toBe(200);
    // Certificates are SAML's: an OIDC-only field on a SAML connection is refused.
    const wrong = await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${idpInitiated}`, { cookie: owner, payload: { clientSecret: 'x' } });
    expect(wrong.statusCode).toBe(400);
  });

  it('reads metadata from a URL through the SSRF guard: loopback refused unless the development opt-in is on', async () => {
    const server = http.createServer((req, res) => {
      if (req.url === '/metadata') res.writeHead(200, { 'content-type': 'application/samlmetadata+xml' }).end(idp.metadataXml());
      else res.writeHead(404).end();
    });
    await new Promise<void>((ready) => server.listen(0, '127.0.0.1', ready));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const other = await secondInstance(h, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    try {
      const owner = await h.cookieFor(h.user('acme', 'owner').email);
      const create = (app: typeof h.built.app, metadataUrl: string) =>
        app.inject({ method: 'POST', url: `/api/orgs/${acme}/sso/connections`, headers: { origin: ORIGIN, cookie: owner }, payload: { kind: 'saml', name: 'by URL', metadataUrl } });
      const refusedHere = await create(h.built.app, `${base}/metadata`);
      expect(refusedHere.statusCode, refusedHere.body).toBe(400);
      expect(refusedHere.json<Problem>().errors?.[0]?.path).toBe('metadataUrl');
      const missing = await create(other.built.app, `${base}/nothing`);
      expect(missing.statusCode, missing.body).toBe(400);
      const ok = await create(other.built.app, `${base}/metadata`);
      expect(ok.statusCode, ok.body).toBe(201);
      expect(ok.json<{ saml: { idpEntityId: string } }>().saml.idpEntityId).toBe(idp.entityId);
      await h.t.owner.query('delete from sso_connections where id = $1', [ok.json<{ id: string }>().id]);
    } finally {
      await other.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    }
  });

  it('refuses malformed or hostile IdP metadata with a 400 and stores nothing', async () => {
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const before = await h.t.owner.query('select id from sso_connections where org_id = $1', [acme]);
    const bad = [
      { metadataXml: '<md:EntityDescriptor' },
      { metadataXml: `<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>${idp.metadataXml().replace(/^<\?xml[^>]*>/, '')}` },
      { metadataXml: '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>' },
      { metadataXml: idp.metadataXml().replace(idp.key.certBase64, 'bm90IGEgY2VydA==') },
      { idpEntityId: 'https://idp.test/x', ssoUrl: 'ftp://idp.test/sso', certificates: [idp.key.certPem] },
      { idpEntityId: 'https://idp.test/x', ssoUrl: 'https://idp.test/sso', certificates: ['-----BEGIN PRIVATE KEY-----x'] },
    ];
    for (const payload of bad) {
      const res = await call(h, 'POST', `/api/orgs/${acme}/sso/connections`, { cookie: owner, payload: { kind: 'saml', name: 'bad', ...payload } });
      expect(res.statusCode, res.body).toBe(400);
      expect(res.json<Problem>().code).toBe('validation_failed');
    }
    expect(await h.t.owner.query('select id from sso_connections where org_id = $1', [acme])).toHaveLength(before.length);
  });
});
