import { sql } from 'kysely';
import { SAML, ValidateInResponseTo, type CacheProvider, type Profile } from '@node-saml/node-saml';
import type { Element } from '@xmldom/xmldom';
import { createSealedBox, randomToken } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { exec, one, writeUnlessTaken, type Database } from '../../db/database.js';
import { samlAcsPath, samlMetadataPath, type ConnectionService, type SamlSignInConnection } from './connections.js';
import { FLOW_TTL_SECONDS, safeReturnTo } from './flow-state.js';
import { hasForbiddenMarkup, parseXmlStrict } from './saml-metadata.js';
import type { ConnectionTests } from './connection-tests.js';
import type { DomainService } from './domains.js';
import { TEST_RUN_ENDED, type SsoIdentity, type SsoOutcome, type SsoSignIn, type SsoStart, type SsoTestDone } from './sign-in.js';
import { requireOrg } from '../../db/binding.js';

/** Clock difference tolerated between the IdP and this server on NotBefore/NotOnOrAfter. */
export const SAML_CLOCK_SKEW_MS = 60_000;
/** An accepted assertion id is remembered until its NotOnOrAfter, and never longer than this. */
const MAX_ASSERTION_MEMORY_MS = 24 * 3600_000;
/** Largest SAMLResponse (base64) accepted: signed responses with a few attributes are a few KiB. */
export const MAX_SAML_RESPONSE_CHARS = 128 * 1024;

const PROTOCOL = 'urn:oasis:names:tc:SAML:2.0:protocol';
const ASSERTION = 'urn:oasis:names:tc:SAML:2.0:assertion';
const BEARER = 'urn:oasis:names:tc:SAML:2.0:cm:bearer';
const EMAIL_FORMAT = 'urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress';

// Where the common IdPs put each claim (Entra ID/ADFS use the WS-* URIs, Okta and others short names).
const EMAIL_ATTRIBUTES = ['email', 'mail', 'emailaddress', 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress', 'urn:oid:0.9.2342.19200300.100.1.3'];
const NAME_ATTRIBUTES = ['name', 'displayName', 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name', 'http://schemas.microsoft.com/identity/claims/displayname', 'urn:oid:2.16.840.1.113730.3.1.241'];
const GROUP_ATTRIBUTES = ['groups', 'memberOf', 'http://schemas.microsoft.com/ws/2008/06/identity/claims/groups', 'http://schemas.xmlsoap.org/claims/Group'];

/**
 * The SAML side of the browser's flow cookie: which connection and AuthnRequest this browser
 * started. Sealed like the OIDC flow (its own key label), SameSite=None: the IdP answers with a
 * cross-site form POST, which carries no Lax cookie.
 */
interface SamlFlow {
  v: 1;
  orgId: string;
  connectionId: string;
  requestId: string;
  returnTo: string;
  expiresAt: number;
  /** An admin's test run: the ACS records what the IdP asserted in this run and signs nobody in. */
  testId?: string | undefined;
}

export function samlFlowCookieName(secure: boolean): string {
  return secure ? '__Host-palisade_saml' : 'palisade_saml';
}

export function createSamlFlowSealer(sessionSecret: Buffer) {
  const box = createSealedBox(sessionSecret, 'sso saml flow state v1');
  return {
    seal: (f: SamlFlow): string => box.seal(JSON.stringify(f)),
    open(value: string | undefined, nowMs: number): SamlFlow | null {
      const text = value ? box.open(value) : null;
      if (text === null) return null;
      try {
        const f = JSON.parse(text) as Partial<SamlFlow>;
        if (f.v !== 1 || typeof f.orgId !== 'string' || typeof f.connectionId !== 'string' || typeof f.requestId !== 'string') return null;
        if (typeof f.expiresAt !== 'number' || f.expiresAt <= nowMs) return null;
        if (f.testId !== undefined && typeof f.testId !== 'string') return null;
        return {
          v: 1, orgId: f.orgId, connectionId: f.connectionId, requestId: f.requestId, returnTo: safeReturnTo(f.returnTo), expiresAt: f.expiresAt,
          ...(f.testId !== undefined ? { testId: f.testId } : {}),
        };
      } catch {
        return null;
      }
    },
  };
}
export type SamlFlowSealer = ReturnType<typeof createSamlFlowSealer>;

export interface SamlDeps {
  db: Database;
  clock: Clock;
  connections: ConnectionService;
  domains: DomainService;
  sso: SsoSignIn;
  tests: ConnectionTests;
  flows: SamlFlowSealer;
  publicOrigin: string;
}

/** Why a response was refused, for the user and the audit trail: fixed words, never the IdP's text. */
class SamlRefused extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'SamlRefused';
  }
}

/** node-saml's messages mapped to fixed reasons (its own text can quote the response). */
function validationReason(err: unknown): string {
  const msg = err instanceof Error ? err.message : '';
  if (/multiple assertions/i.test(msg)) return 'the response carries more than one assertion';
  if (/InResponseTo/i.test(msg)) return 'the response does not answer a sign-in this service provider started (InResponseTo)';
  if (/signature/i.test(msg)) return 'the response and its assertion must both be signed by the identity provider\u2019s certificate';
  if (/expired|not yet valid|SubjectConfirmation|subject confirmation/i.test(msg)) return 'the assertion has expired or is not valid yet';
  if (/audience/i.test(msg)) return 'the assertion is not for this service provider (audience)';
  if (/provider returned/i.test(msg)) return 'the identity provider refused the sign-in';
  return 'the SAML response could not be validated';
}

const firstString = (v: unknown): string | null => {
  const x = Array.isArray(v) ? v[0] : v;
  return typeof x === 'string' ? x : null;
};

/**
 * SAML 2.0 sign-in (Web Browser SSO profile, HTTP-Redirect out, HTTP-POST back) with
 * @node-saml/node-saml doing the XML signature work. Around it, what the library leaves to its
 * caller: the InResponseTo bound to the browser that sent the request and spent once (in the
 * database, so it holds across instances), the assertion id never accepted twice, Recipient and
 * Destination equal to this connection's ACS URL, the assertion's Issuer equal to the IdP's
 * entity id, and no comment anywhere in the response (the NameID truncation trick needs one).
 */
export function createSamlSignIn(d: SamlDeps) {
  const acsUrl = (id: string) => new URL(samlAcsPath(id), d.publicOrigin).href;
  const spEntityId = (id: string) => new URL(samlMetadataPath(id), d.publicOrigin).href;

  /** AuthnRequest ids of this connection, in the database: issued by `start`, looked up by node-saml. */
  function requestCache(connectionId: string): CacheProvider {
    return {
      saveAsync: async (key, value) => {
        const now = d.clock.now();
        await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
          // Swept here: the table holds only this connection's live requests beyond a few stragglers.
          await exec(tx, sql`delete from saml_requests where connection_id = ${connectionId} and expires_at < ${now.toISOString()}`);
          await exec(tx, sql`insert into saml_requests (request_id, connection_id, expires_at)
                             values (${key}, ${connectionId}, ${new Date(now.getTime() + FLOW_TTL_SECONDS * 1000).toISOString()})`);
        });
        return { value, createdAt: now.getTime() };
      },
      getAsync: async (key) => {
        const r = await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
          one<{ expires_at: Date }>(tx, sql`select expires_at from saml_requests where request_id = ${key} and connection_id = ${connectionId}
                                            and used_at is null and expires_at > ${d.clock.now().toISOString()}`),
        );
        // node-saml wants the value saved: the request's issue instant (it checks its own expiry from it).
        return r ? new Date(new Date(r.expires_at).getTime() - FLOW_TTL_SECONDS * 1000).toISOString() : null;
      },
      // Spent by the ACS itself, atomically with the assertion id (see consume); never deleted early.
      removeAsync: async () => null,
    };
  }

  function samlFor(c: SamlSignInConnection, requestId?: string): SAML {
    return new SAML({
      issuer: spEntityId(c.id),
      callbackUrl: acsUrl(c.id),
      entryPoint: c.settings.ssoUrl,
      idpCert: c.settings.certificates,
      idpIssuer: c.settings.idpEntityId,
      audience: spEntityId(c.id),
      wantAssertionsSigned: true,
      wantAuthnResponseSigned: c.settings.requireSignedResponse,
      acceptedClockSkewMs: SAML_CLOCK_SKEW_MS,
      validateInResponseTo: c.settings.allowIdpInitiated ? ValidateInResponseTo.ifPresent : ValidateInResponseTo.always,
      requestIdExpirationPeriodMs: FLOW_TTL_SECONDS * 1000,
      cacheProvider: requestCache(c.id),
      identifierFormat: 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified',
      // The IdP decides how the user authenticates (its MFA included); asking for a password context breaks that.
      disableRequestedAuthnContext: true,
      signatureAlgorithm: 'sha256',
      ...(requestId ? { generateUniqueId: () => requestId } : {}),
    });
  }

  /** Reads and checks the posted form before any XML library sees it. */
  function decode(samlResponse: string | undefined): { xml: string; doc: Element } {
    if (!samlResponse) throw new AppError('validation_failed', 'the form has no SAMLResponse', [{ path: 'SAMLResponse', message: 'required' }]);
    if (samlResponse.length > MAX_SAML_RESPONSE_CHARS) throw new AppError('payload_too_large', `a SAMLResponse is limited to ${MAX_SAML_RESPONSE_CHARS / 1024} KiB`);
    const b64 = samlResponse.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64)) throw new AppError('malformed_request', 'the SAMLResponse is not base64');
    const xml = Buffer.from(b64, 'base64').toString('utf8');
    if (hasForbiddenMarkup(xml)) throw new AppError('malformed_request', 'a DOCTYPE, entity declaration or processing instruction is not accepted in a SAML response');
    const doc = parseXmlStrict(xml)?.documentElement;
    if (!doc || doc.namespaceURI !== PROTOCOL || doc.localName !== 'Response') throw new AppError('malformed_request', 'the SAMLResponse is not a SAML 2.0 Response');
    return { xml, doc: doc as Element };
  }

  /** Checks node-saml does not make, on the assertion it verified. Returns the assertion id and how long to remember it. */
  function checkAssertion(c: SamlSignInConnection, profile: Profile, responseRoot: Element): { assertionId: string; rememberUntil: Date } {
    if (profile.issuer !== c.settings.idpEntityId) throw new SamlRefused('the assertion was issued by another identity provider (Issuer)');
    const assertionXml = profile.getAssertionXml?.();
    const assertion = assertionXml ? parseXmlStrict(assertionXml)?.documentElement : null;
    if (!assertion || assertion.localName !== 'Assertion' || assertion.namespaceURI !== ASSERTION) throw new SamlRefused('the SAML response could not be validated');
    const assertionId = assertion.getAttribute('ID') ?? '';
    if (!assertionId || assertionId.length > 256) throw new SamlRefused('the assertion has no usable ID');
    const acs = acsUrl(c.id);
    // The signed Response names where it was sent: here (SAML core 3.2.2; required once signed).
    const destination = responseRoot.getAttribute('Destination');
    if ((c.settings.requireSignedResponse && destination !== acs) || (destination && destination !== acs)) {
      throw new SamlRefused('the response was sent to another service provider (Destination)');
    }
    // The bearer confirmation names this ACS as its Recipient (profiles 4.1.4.2): an assertion
    // minted for another SP that trusts the same IdP is not usable here.
    const confirmations = Array.from(assertion.getElementsByTagNameNS(ASSERTION, 'SubjectConfirmation')).filter((e) => e.getAttribute('Method') === BEARER);
    const data = confirmations.flatMap((e) => Array.from(e.getElementsByTagNameNS(ASSERTION, 'SubjectConfirmationData')));
    if (!data.some((e) => e.getAttribute('Recipient') === acs)) throw new SamlRefused('the assertion is for another recipient (Recipient)');
    const ends = [
      ...data.map((e) => e.getAttribute('NotOnOrAfter')),
      ...Array.from(assertion.getElementsByTagNameNS(ASSERTION, 'Conditions')).map((e) => e.getAttribute('NotOnOrAfter')),
    ].filter((v): v is string => !!v).map((v) => Date.parse(v)).filter((n) => Number.isFinite(n));
    // Without an end, an assertion could be replayed as long as its id is remembered: refused.
    if (ends.length === 0) throw new SamlRefused('the assertion has no NotOnOrAfter');
    const now = d.clock.now().getTime();
    const end = Math.max(...ends);
    // node-saml judged the times by the process clock; the server's clock (sessions, flows) must agree.
    if (end + SAML_CLOCK_SKEW_MS <= now) throw new SamlRefused('the assertion has expired or is not valid yet');
    return { assertionId, rememberUntil: new Date(Math.min(end + SAML_CLOCK_SKEW_MS, now + MAX_ASSERTION_MEMORY_MS)) };
  }

  function identityOf(c: SamlSignInConnection, profile: Profile): SsoIdentity {
    const attrs = (profile.attributes ?? {}) as Record<string, unknown>;
    const pick = (names: readonly string[]) => names.map((n) => firstString(attrs[n])).find((v) => v !== null) ?? null;
    const nameId = profile.nameID;
    const email = pick(EMAIL_ATTRIBUTES) ?? (profile.nameIDFormat === EMAIL_FORMAT ? nameId : null);
    const groupsRaw = GROUP_ATTRIBUTES.map((n) => attrs[n]).find((v) => v !== undefined);
    const groups = (Array.isArray(groupsRaw) ? groupsRaw : groupsRaw === undefined ? [] : [groupsRaw])
      .filter((g): g is string => typeof g === 'string' && g.length <= 256).slice(0, 200);
    return {
      issuer: c.settings.idpEntityId,
      subject: nameId,
      email: email && email.length <= 254 ? email : null,
      // SAML has no email_verified: the org's own IdP asserts the address, and a first sign-in is
      // linked only when the address is in a domain this org proved in DNS (accountOf).
      emailVerified: email !== null,
      name: pick(NAME_ATTRIBUTES)?.slice(0, 200) ?? null,
      groups,
    };
  }

  /**
   * Spends the AuthnRequest (if any) and records the assertion id, in one transaction: a second
   * post of the same response, here or on another instance, finds one or the other taken.
   */
  async function consume(c: SamlSignInConnection, assertionId: string, rememberUntil: Date, requestId: string | null): Promise<string | null> {
    const now = d.clock.now().toISOString();
    return d.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
      await exec(tx, sql`delete from saml_assertions where connection_id = ${c.id} and expires_at < ${now}`);
      const fresh = await writeUnlessTaken(
        tx,
        sql`insert into saml_assertions (connection_id, assertion_id, expires_at) values (${c.id}, ${assertionId}, ${rememberUntil.toISOString()})`,
      );
      if (!fresh) return 'this assertion was already used (replay)';
      if (requestId !== null) {
        const spent = await exec(tx, sql`update saml_requests set used_at = ${now} where request_id = ${requestId} and connection_id = ${c.id}
                                          and used_at is null and expires_at > ${now}`);
        if (spent !== 1) return 'the response does not answer a sign-in this service provider started (InResponseTo)';
      }
      return null;
    });
  }

  return {
    /**
     * `/api/auth/sso/start` for a SAML connection: the same routing as OIDC (an email's verified
     * domain, or an org and connection), null when the connection it reaches is not SAML.
     */
    async startFor(input: { email?: string | undefined; orgId?: string | undefined; connectionId?: string | undefined; returnTo?: string | undefined }): Promise<SsoStart | null> {
      const orgId = input.orgId ?? (input.email ? await d.domains.orgOfEmail(input.email) : null);
      const target = orgId ? await d.connections.kindForSignIn(orgId, input.connectionId) : null;
      if (!orgId || target?.kind !== 'saml') return null;
      const c = await d.connections.samlConnection(orgId, target.id, true);
      return c ? this.start(c, input.returnTo) : null;
    },

    /** The SP-initiated redirect to the IdP with a fresh AuthnRequest; its id goes in the browser's SAML flow cookie. */
    async start(c: SamlSignInConnection, returnTo: string | undefined, testId?: string): Promise<SsoStart> {
      const requestId = `_${randomToken(20)}`;
      const location = await samlFor(c, requestId).getAuthorizeUrlAsync('', undefined, {});
      const flow: SamlFlow = {
        v: 1, orgId: c.orgId, connectionId: c.id, requestId, returnTo: safeReturnTo(returnTo),
        expiresAt: d.clock.now().getTime() + FLOW_TTL_SECONDS * 1000, ...(testId ? { testId } : {}),
      };
      return { location, flow: d.flows.seal(flow) };
    },

    /**
     * An admin's test run of one of their org's SAML connections, enabled or not: a real
     * AuthnRequest whose answer the ACS checks exactly as a sign-in's, then records (claims and
     * what a sign-in would do) instead of signing anyone in.
     */
    async startTest(ctx: RequestContext, connectionId: string, returnTo: string | undefined): Promise<SsoStart & { testId: string }> {
      const org = requireOrg(ctx);
      const c = await d.connections.samlConnection(org.orgId, connectionId, false);
      if (!c) throw new AppError('not_found');
      const testId = await d.tests.open(ctx, c.id);
      return { ...(await this.start(c, returnTo, testId)), testId };
    },

    /** This SP's metadata for a connection (entity id, ACS URL, NameID format), for the IdP's admin. */
    async metadata(connectionId: string): Promise<string> {
      const orgId = await d.connections.samlOrgOf(connectionId);
      const c = orgId ? await d.connections.samlConnection(orgId, connectionId, false) : null;
      if (!c) throw new AppError('not_found');
      return samlFor(c).generateServiceProviderMetadata(null, null);
    },

    /**
     * The IdP's POST to the ACS. `form` is the posted body; `flowCookie` the browser's SAML flow
     * (absent for an IdP-initiated sign-in). Ends in the shared completion of every SSO sign-in,
     * or, when the flow is an admin's test run, in the run's record (nobody signs in).
     */
    async acs(ctx: RequestContext, connectionId: string, form: URLSearchParams, flowCookie: string | undefined): Promise<SsoOutcome | SsoTestDone> {
      const orgId = await d.connections.samlOrgOf(connectionId);
      const flow = d.flows.open(flowCookie, d.clock.now().getTime());
      // A test run may try a connection before it is enabled; nothing else may. The run is the
      // one sealed in this browser's flow, for this very connection.
      const test = flow?.testId && orgId && flow.orgId === orgId && flow.connectionId === connectionId ? { orgId, testId: flow.testId, flow } : null;
      const c = orgId ? await d.connections.samlConnection(orgId, connectionId, !test) : null;
      if (!c) throw new AppError('not_found', 'no such enabled SAML connection');
      const samlResponse = form.get('SAMLResponse') ?? undefined;
      const { xml, doc } = decode(samlResponse);
      try {
        // A comment inside a signed element leaves the signature valid (c14n drops it) and can
        // cut a NameID in two for a careless reader: no IdP needs one, so none is accepted.
        if (xml.includes('<!--')) throw new SamlRefused('comments are not accepted in a SAML response');
        const inResponseTo = doc.getAttribute('InResponseTo') || null;
        let returnTo = '/';
        if (test) {
          // A test run is answered by the response to its own AuthnRequest only (never an unsolicited one).
          if (inResponseTo !== test.flow.requestId) throw new SamlRefused('this browser did not start this sign-in (it expired, or it was started elsewhere)');
          returnTo = test.flow.returnTo;
        } else if (inResponseTo === null) {
          if (!c.settings.allowIdpInitiated) throw new SamlRefused('IdP-initiated sign-in is not enabled for this connection: start the sign-in here');
          returnTo = safeReturnTo(form.get('RelayState') ?? undefined);
        } else {
          // The answer must reach the browser that asked: its sealed flow names this request.
          if (!flow || flow.connectionId !== c.id || flow.orgId !== c.orgId || flow.requestId !== inResponseTo) {
            throw new SamlRefused('this browser did not start this sign-in (it expired, or it was started elsewhere)');
          }
          returnTo = flow.returnTo;
        }
        let profile: Profile | null;
        try {
          ({ profile } = await samlFor(c).validatePostResponseAsync({ SAMLResponse: samlResponse ?? '' }));
        } catch (err) {
          throw new SamlRefused(validationReason(err));
        }
        if (!profile?.nameID) throw new SamlRefused('the assertion names no subject (NameID)');
        // An identity key, stored and compared: bounded like any identifier (SAML core caps nothing).
        if (profile.nameID.length > 512) throw new SamlRefused('the NameID is longer than 512 characters');
        const { assertionId, rememberUntil } = checkAssertion(c, profile, doc);
        // A test run spends its request and its assertion id like a sign-in: its response is never usable again.
        const spent = await consume(c, assertionId, rememberUntil, inResponseTo);
        if (spent) throw new SamlRefused(spent);
        const identity = identityOf(c, profile);
        if (test) {
          if (!(await d.tests.record(ctx, test, { c, identity, attributes: attributesOf(profile) }))) return d.sso.refuse(ctx, c.orgId, c.id, TEST_RUN_ENDED);
          return { testId: test.testId, returnTo };
        }
        return await d.sso.complete(ctx, c, identity, returnTo);
      } catch (err) {
        if (!(err instanceof SamlRefused)) throw err;
        // A failed test run is the run's result, for the admin to read; it refuses no sign-in.
        if (test) {
          // A run answered already (or expired): this is a replay, refused and audited as one.
          if (!(await d.tests.record(ctx, test, { reason: err.reason }))) return d.sso.refuse(ctx, c.orgId, c.id, TEST_RUN_ENDED);
          return { testId: test.testId, returnTo: test.flow.returnTo };
        }
        return d.sso.refuse(ctx, c.orgId, c.id, err.reason);
      }
    },
  };
}

/**
 * The assertion's attributes as a test run shows them to the admin mapping claims: names and
 * string values, bounded (50 attributes, 20 values of 256 characters each).
 */
function attributesOf(profile: Profile): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const attrs = (profile.attributes ?? {}) as Record<string, unknown>;
  for (const [name, raw] of Object.entries(attrs).slice(0, 50)) {
    if (name.length > 256) continue;
    const values = (Array.isArray(raw) ? raw : [raw]).filter((v): v is string => typeof v === 'string').slice(0, 20).map((v) => v.slice(0, 256));
    out[name] = values;
  }
  return out;
}

export type SamlSignIn = ReturnType<typeof createSamlSignIn>;
