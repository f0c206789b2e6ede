import * as client from 'openid-client';
import { EgressRefused } from '../webhooks/index.js';

export type EgressFetch = (url: string, init?: { method?: string; headers?: Record<string, string>; body?: string | URLSearchParams; signal?: AbortSignal }) => Promise<Response>;

export interface OidcClientSettings {
  issuer: string;
  clientId: string;
  clientSecret: string;
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
  try {
    return await client.discovery(url, settings.clientId, undefined, client.ClientSecretPost(settings.clientSecret), {
      [client.customFetch]: asCustomFetch(egress),
      ...(url.protocol === 'http:' ? { execute: [client.allowInsecureRequests] } : {}),
    });
  } catch (err) {
    throw new DiscoveryFailed(discoveryError(err));
  }
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
  let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
  try {
    tokens = await client.authorizationCodeGrant(config, callbackUrl, {
      expectedState: checks.state, expectedNonce: checks.nonce, pkceCodeVerifier: checks.verifier, idTokenExpected: true,
    });
  } catch (err) {
    throw new CallbackFailed(callbackError(err));
  }
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
  if (code === 'OAUTH_INVALID_RESPONSE' || code === 'OAUTH_PARSE_ERROR') return 'the identity provider\u2019s answer is not valid';
  return typeof code === 'string' && /^[A-Z0-9_]{1,60}$/.test(code) ? `the sign-in could not be completed (${code})` : 'the sign-in could not be completed';
}
