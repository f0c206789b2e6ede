import * as client from 'openid-client';
import { EgressRefused } from '../webhooks/index.js';

export type EgressFetch = (url: string, init?: { method?: string; headers?: Record<string, string>; body?: string | URLSearchParams; signal?: AbortSignal }) => Promise<Response>;

export interface OidcClientSettings {
  issuer: string;
  clientId: string;
  clientSecret: string;
  /**
   * Multi-tenant Microsoft Entra ID: the issuer is the `common` or `organizations` endpoint, whose
   * discovery document names a template issuer (`…/{tenantid}/v2.0`), and only these tenants
   * (Entra tenant ids, lower case) may sign in. Absent: the issuer is one tenant's, compared exactly.
   */
  allowedTenants?: readonly string[] | undefined;
}

/** Where Entra ID's multi-tenant discovery documents put the tenant in their issuer. */
export const TENANT_PLACEHOLDER = '{tenantid}';
/** Without a list, any tenant of the provider (anyone can make one) could sign in: refused. */
const MULTI_TENANT_NEEDS_LIST = `the issuer is multi-tenant (its document names ${TENANT_PLACEHOLDER}): list the Entra tenant ids allowed to sign in (allowedTenants), or use the tenant\u2019s own issuer`;

/** An Entra tenant id: a GUID. */
export const TENANT_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Whether `template` (a discovery document's issuer) is the multi-tenant form of `configured`:
 * `{tenantid}` once, as one whole path segment, and the configured issuer equal to it with that
 * segment filled in (Entra: `https://login.microsoftonline.com/organizations/v2.0` and
 * `https://login.microsoftonline.com/{tenantid}/v2.0`). Nothing else of the URL may differ.
 */
export function isTenantTemplateOf(template: string, configured: string): boolean {
  const parts = template.split(TENANT_PLACEHOLDER);
  if (parts.length !== 2) return false;
  const [before = '', after = ''] = parts;
  let origin: string;
  try {
    origin = new URL(configured).origin;
  } catch {
    return false;
  }
  // In the path, after the origin, as a whole segment.
  if (!before.startsWith(`${origin}/`) || !before.endsWith('/') || (after !== '' && !after.startsWith('/'))) return false;
  if (!configured.startsWith(before) || !configured.endsWith(after) || configured.length <= before.length + after.length) return false;
  return /^[A-Za-z0-9.-]{1,100}$/.test(configured.slice(before.length, configured.length - after.length));
}

/** Why discovery failed, in words fit for the admin who typed the issuer (never the IdP's body). */
export class DiscoveryFailed extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'DiscoveryFailed';
  }
}

/**
 * Reads the issuer's discovery document through the guarded egress fetch and returns the client
 * configuration (openid-client). The document's `issuer` must be the configured one exactly
 * (openid-client checks it: a document served for another issuer is refused). Plain http is
 * accepted only where loopback is (development and tests with a local IdP).
 */
export async function discover(settings: OidcClientSettings, egress: EgressFetch, allowInsecure: boolean): Promise<client.Configuration> {
  let url: URL;
  try {
    url = new URL(settings.issuer);
  } catch {
    throw new DiscoveryFailed('the issuer is not a URL');
  }
  if (url.protocol !== 'https:' && !(allowInsecure && url.protocol === 'http:')) throw new DiscoveryFailed('the issuer must use https');
  const multiTenant = (settings.allowedTenants?.length ?? 0) > 0;
  // Multi-tenant: the document's issuer is a template, which openid-client would refuse (it
  // accepts one only from login.microsoftonline.com, and keeps that to itself): its well-known URL
  // is read directly (openid-client then compares nothing) and the template is checked here.
  const where = multiTenant ? new URL(`${url.href.replace(/\/$/, '')}/.well-known/openid-configuration`) : url;
  let config: client.Configuration;
  try {
    config = await client.discovery(where, settings.clientId, undefined, client.ClientSecretPost(settings.clientSecret), {
      [client.customFetch]: asCustomFetch(egress),
      ...(url.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
    });
  } catch (err) {
    // openid-client refused the document's issuer: a template is refused here in words that say why.
    const named = (err as { cause?: { body?: { issuer?: unknown } } }).cause?.body?.issuer;
    if (typeof named === 'string' && named.includes(TENANT_PLACEHOLDER)) throw new DiscoveryFailed(MULTI_TENANT_NEEDS_LIST);
    throw new DiscoveryFailed(discoveryError(err));
  }
  const issuer = config.serverMetadata().issuer;
  if (multiTenant) {
    if (!isTenantTemplateOf(issuer, settings.issuer)) {
      throw new DiscoveryFailed(`the discovery document does not name a multi-tenant issuer for it (…/${TENANT_PLACEHOLDER}/…): allowedTenants is for Entra ID\u2019s common or organizations endpoint`);
    }
  } else if (issuer.includes(TENANT_PLACEHOLDER)) {
    // Any tenant of the provider could sign in through it: only with the tenants named.
    throw new DiscoveryFailed(MULTI_TENANT_NEEDS_LIST);
  }
  return config;
}

/**
 * A client configuration for metadata discovered earlier: a new one per sign-in, so that the
 * issuer's keys are read afresh (openid-client caches them per configuration and would refuse a
 * rotated key for up to a minute after the last read), while discovery is not repeated.
 */
export function configurationFor(metadata: client.ServerMetadata, settings: OidcClientSettings, egress: EgressFetch, now: Date): client.Configuration {
  // ID token times are judged by the server's clock (the one sessions and flows use), in whole seconds.
  const skew = Math.round((now.getTime() - Date.now()) / 1000);
  const config = new client.Configuration(
    metadata, settings.clientId,
    { [client.clockSkew]: skew, id_token_signed_response_alg: idTokenAlgorithm(metadata) },
    client.ClientSecretPost(settings.clientSecret),
  );
  config[client.customFetch] = asCustomFetch(egress);
  // openid-client checks the ID token's claims but, for a token endpoint answer, not its
  // signature (OIDC Core 3.1.3.7 lets TLS stand in for it) unless asked: asked, so the token must
  // be signed by a key in the issuer's JWKS (read through the egress guard, afresh per sign-in).
  client.enableNonRepudiationChecks(config);
  // Discovery refused plain http unless allowed; an http endpoint here was allowed then.
  if (new URL(metadata.issuer).protocol === 'http:') client.allowInsecureRequests(config);
  return config;
}

const ASYMMETRIC = /^(RS|PS|ES)(256|384|512)$|^EdDSA$/;

/**
 * The one algorithm an ID token may be signed with: RS256 (every IdP's default) unless the IdP
 * offers only others. Never a MAC: an HS256 token is signed with the client secret, which this
 * server holds too, so it proves nothing about the IdP; never `none`.
 */
function idTokenAlgorithm(metadata: client.ServerMetadata): string {
  const offered = metadata.id_token_signing_alg_values_supported ?? [];
  if (offered.length === 0 || offered.includes('RS256')) return 'RS256';
  return offered.find((alg) => ASYMMETRIC.test(alg)) ?? 'RS256';
}

/** openid-client sends string or form bodies only (no streams, no files); anything else is refused. */
function asCustomFetch(egress: EgressFetch): client.CustomFetch {
  return (url, options) => {
    const { body } = options;
    if (body !== undefined && body !== null && typeof body !== 'string' && !(body instanceof URLSearchParams)) {
      return Promise.reject(new EgressRefused('unsupported request body'));
    }
    return egress(url, { method: options.method, headers: options.headers, body: body ?? undefined, ...(options.signal ? { signal: options.signal } : {}) });
  };
}

function discoveryError(err: unknown): string {
  if (err instanceof EgressRefused) return err.reason;
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof EgressRefused) return cause.reason;
  const code = (err as { code?: unknown }).code;
  // openid-client's codes are fixed identifiers; its messages may quote the document.
  if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') return 'the discovery document names another issuer';
  if (code === 'OAUTH_RESPONSE_IS_NOT_CONFORM') return 'the discovery endpoint did not answer 200 with a JSON document';
  if (code === 'OAUTH_PARSE_ERROR' || code === 'OAUTH_RESPONSE_IS_NOT_JSON') return 'the discovery document is not JSON';
  if (code === 'OAUTH_INVALID_RESPONSE') return 'the discovery document is not valid';
  return typeof code === 'string' && /^[A-Z0-9_]{1,60}$/.test(code) ? `discovery failed (${code})` : 'discovery failed';
}

/** The browser's way to the IdP, and the secrets the callback must match. */
export interface AuthorizationRequest {
  url: string;
  state: string;
  nonce: string;
  verifier: string;
}

/** An authorization request with PKCE (S256), state and nonce, each fresh and random. */
export async function authorizationRequest(
  config: client.Configuration,
  opts: { redirectUri: string; scopes: readonly string[]; loginHint?: string | undefined },
): Promise<AuthorizationRequest> {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: opts.redirectUri,
    response_type: 'code',
    scope: opts.scopes.join(' '),
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...(opts.loginHint ? { login_hint: opts.loginHint } : {}),
  });
  return { url: url.href, state, nonce, verifier };
}

/** What an OIDC sign-in proved about the user: from the validated ID token (and UserInfo when it lacked the email). */
export interface OidcIdentity {
  issuer: string;
  subject: string;
  email: string | null;
  emailVerified: boolean;
  name: string | null;
  groups: string[];
}

/** Why a callback failed, in words fit for the user (never a token or the IdP's own text). */
export class CallbackFailed extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'CallbackFailed';
  }
}

/**
 * Redeems the authorization code: the state must be the flow's, the token endpoint gets the PKCE
 * verifier, and the ID token must be signed by the issuer's keys (no `none`), for this client,
 * unexpired, carrying the flow's nonce (openid-client checks each). The claims come from the
 * validated ID token only; UserInfo (bound to the same subject) fills a missing email.
 */
export async function redeemCode(
  config: client.Configuration,
  callbackUrl: URL,
  checks: { state: string; nonce: string; verifier: string },
): Promise<OidcIdentity> {
  let tokens: Tokens;
  try {
    tokens = await client.authorizationCodeGrant(config, callbackUrl, {
      expectedState: checks.state, expectedNonce: checks.nonce, pkceCodeVerifier: checks.verifier, idTokenExpected: true,
    });
  } catch (err) {
    throw new CallbackFailed(callbackError(err));
  }
  return identityOf(config, tokens);
}

type Tokens = Awaited<ReturnType<typeof client.authorizationCodeGrant>>;

/** The token endpoint's answer, held to be read twice (see redeemMultiTenantCode). */
class TokenAnswerHeld extends Error {
  constructor() {
    super('token answer held');
    this.name = 'TokenAnswerHeld';
  }
}

/**
 * `redeemCode` for a multi-tenant (Entra ID) connection. The expected issuer depends on the ID
 * token's `tid`, which openid-client's public API cannot express: the code is redeemed once
 * (state, PKCE and client authentication checked and sent as for any sign-in), the token
 * endpoint's answer is held, its unverified `tid` only chooses which issuer to expect —
 * `{tenantid}` replaced by it, as Microsoft documents — and the held answer is then validated in
 * full by openid-client against that issuer: signature by the provider's keys, `iss` equal to the
 * tenant's issuer, audience, nonce, expiry. A `tid` that is missing, not a tenant id, or not in
 * the connection's list is refused before; the verified `tid` must be the one chosen. An `iss`
 * authorization response parameter (Entra sends none) must name the tenant's issuer too.
 */
export async function redeemMultiTenantCode(
  configFor: (issuer: string, egress: EgressFetch) => client.Configuration,
  template: string,
  allowedTenants: readonly string[],
  egress: EgressFetch,
  callbackUrl: URL,
  checks: { state: string; nonce: string; verifier: string },
): Promise<OidcIdentity> {
  let held: { body: string; status: number; headers: Headers } | null = null;
  const first = configFor(template, async (url, init) => {
    const res = await egress(url, init);
    if (init?.method === 'POST' && url === tokenEndpointOf(first)) {
      held = { body: await res.text(), status: res.status, headers: new Headers(res.headers) };
      throw new TokenAnswerHeld();
    }
    return res;
  });
  // The tenant is not known yet: an `iss` parameter is compared in the second pass, with it.
  const withoutIss = new URL(callbackUrl);
  withoutIss.searchParams.delete('iss');
  try {
    await client.authorizationCodeGrant(first, withoutIss, { expectedState: checks.state, expectedNonce: checks.nonce, pkceCodeVerifier: checks.verifier, idTokenExpected: true });
  } catch (err) {
    if (!held) throw new CallbackFailed(callbackError(err));
  }
  const answer = held as { body: string; status: number; headers: Headers } | null;
  if (!answer) throw new CallbackFailed('the sign-in could not be completed');
  const tid = unverifiedTenantOf(answer.body);
  // No ID token (an error answer): the second pass reports what the provider said.
  if (tid === undefined && answer.status === 200) throw new CallbackFailed('the ID token names no tenant (tid)');
  if (tid !== undefined && !TENANT_ID.test(tid)) throw new CallbackFailed('the ID token\u2019s tenant (tid) is not an Entra tenant id');
  if (tid !== undefined && !allowedTenants.includes(tid)) throw new CallbackFailed('the ID token is from a tenant this connection does not allow');
  const issuer = template.replace(TENANT_PLACEHOLDER, tid ?? TENANT_PLACEHOLDER);
  const second = configFor(issuer, (url, init) =>
    init?.method === 'POST' && url === tokenEndpointOf(second)
      ? Promise.resolve(new Response(answer.body, { status: answer.status, headers: answer.headers }))
      : egress(url, init));
  let tokens: Tokens;
  try {
    tokens = await client.authorizationCodeGrant(second, callbackUrl, {
      expectedState: checks.state, expectedNonce: checks.nonce, pkceCodeVerifier: checks.verifier, idTokenExpected: true,
    });
  } catch (err) {
    throw new CallbackFailed(callbackError(err));
  }
  const claims = tokens.claims();
  // openid-client compared iss with the tenant's issuer; the tenant it names is the one chosen.
  if (!claims || claims.tid !== tid || claims.iss !== issuer) throw new CallbackFailed('the ID token is not for this sign-in (issuer, audience, nonce or state differ)');
  return identityOf(second, tokens);
}

const tokenEndpointOf = (config: client.Configuration): string | undefined => {
  const endpoint = config.serverMetadata().token_endpoint;
  return endpoint ? new URL(endpoint).href : undefined;
};

/** The `tid` claim of the ID token in a token endpoint answer, unverified (it only chooses the issuer to expect). */
function unverifiedTenantOf(body: string): string | undefined {
  try {
    const json = JSON.parse(body) as { id_token?: unknown };
    if (typeof json.id_token !== 'string') return undefined;
    const payload = JSON.parse(Buffer.from(json.id_token.split('.')[1] ?? '', 'base64url').toString('utf8')) as { tid?: unknown };
    return typeof payload.tid === 'string' ? payload.tid : undefined;
  } catch {
    return undefined;
  }
}

/** The identity a validated token answer proves: the ID token's claims, UserInfo (bound to the same subject) filling a missing email. */
async function identityOf(config: client.Configuration, tokens: Tokens): Promise<OidcIdentity> {
  const claims = tokens.claims();
  if (!claims) throw new CallbackFailed('the identity provider sent no ID token');
  let source: Record<string, unknown> = claims;
  if (typeof claims.email !== 'string' && tokens.access_token) {
    try {
      source = { ...(await client.fetchUserInfo(config, tokens.access_token, claims.sub)), ...claims };
    } catch (err) {
      throw new CallbackFailed(callbackError(err));
    }
  }
  const email = typeof source.email === 'string' && source.email.length <= 254 ? source.email : null;
  const groups = Array.isArray(source.groups) ? source.groups.filter((g): g is string => typeof g === 'string' && g.length <= 256).slice(0, 200) : [];
  return {
    issuer: claims.iss,
    subject: claims.sub,
    email,
    // Only an explicit true counts: an absent claim proves nothing about the mailbox.
    emailVerified: source.email_verified === true,
    name: typeof source.name === 'string' ? source.name.slice(0, 200) : null,
    groups,
  };
}

function callbackError(err: unknown): string {
  if (err instanceof EgressRefused) return `the identity provider could not be reached (${err.reason})`;
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof EgressRefused) return `the identity provider could not be reached (${cause.reason})`;
  const code = (err as { code?: unknown }).code;
  // An error answer of the IdP (the user cancelled, the code was used): its code is a fixed token.
  const oauthError = (err as { error?: unknown }).error;
  if (code === 'OAUTH_AUTHORIZATION_RESPONSE_ERROR' || code === 'OAUTH_RESPONSE_BODY_ERROR') {
    return typeof oauthError === 'string' && /^[a-z_]{1,60}$/.test(oauthError) ? `the identity provider refused the sign-in (${oauthError})` : 'the identity provider refused the sign-in';
  }
  if (code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED' || code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED') return 'the ID token is not for this sign-in (issuer, audience, nonce or state differ)';
  if (code === 'OAUTH_JWT_TIMESTAMP_CHECK_FAILED') return 'the ID token has expired or is not valid yet';
  if (code === 'OAUTH_JWS_SIGNATURE_VERIFICATION_FAILED' || code === 'OAUTH_KEY_SELECTION_FAILED' || code === 'OAUTH_UNSUPPORTED_OPERATION') {
    return 'the ID token is not signed by the identity provider\u2019s keys';
  }
  // oauth4webapi reports a signature that does not verify as an invalid response; its message is fixed.
  if (code === 'OAUTH_INVALID_RESPONSE' && cause instanceof Error && cause.message === 'JWT signature verification failed') {
    return 'the ID token is not signed by the identity provider\u2019s keys';
  }
  if (code === 'OAUTH_INVALID_RESPONSE' || code === 'OAUTH_PARSE_ERROR') return 'the identity provider\u2019s answer is not valid';
  return typeof code === 'string' && /^[A-Z0-9_]{1,60}$/.test(code) ? `the sign-in could not be completed (${code})` : 'the sign-in could not be completed';
}
