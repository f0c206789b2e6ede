/**
 * Social sign-in providers, configured by the deployment (not per org): Google (an OIDC preset),
 * GitHub (OAuth 2 with its REST API for the identity) and any number of generic OIDC providers
 * (e.g. Microsoft personal accounts). Read from the environment by loadConfig only.
 */

/** An OpenID Provider: discovery, PKCE, state, nonce and a signed ID token. */
export interface SocialOidcProvider {
  id: string;
  name: string;
  protocol: 'oidc';
  issuer: string;
  clientId: string;
  clientSecret: string;
  scopes: readonly string[];
}

/** GitHub's OAuth 2 code flow: the identity comes from GET /user and the primary verified address of GET /user/emails. */
export interface SocialGithubProvider {
  id: 'github';
  name: string;
  protocol: 'github';
  authorizeUrl: string;
  tokenUrl: string;
  apiUrl: string;
  clientId: string;
  clientSecret: string;
  scopes: readonly string[];
}

export type SocialProvider = SocialOidcProvider | SocialGithubProvider;

export interface SocialConfig {
  /**
   * An unknown provider identity whose verified address has no account may create one. On by
   * default, as registration is open; SOCIAL_SIGN_UP=false keeps social sign-in to accounts that
   * exist and linked it.
   */
  signUp: boolean;
  providers: readonly SocialProvider[];
}

export const GOOGLE_ISSUER = 'https://accounts.google.com';
export const GITHUB_AUTHORIZE_URL = 'https://github.com/login/oauth/authorize';
export const GITHUB_TOKEN_URL = 'https://github.com/login/oauth/access_token';
export const GITHUB_API_URL = 'https://api.github.com';

const PROVIDER_ID = /^[a-z][a-z0-9-]{1,31}$/;
const CLIENT_ID = /^[\x21-\x7e]{1,255}$/;
const CLIENT_SECRET = /^[\x20-\x7e]{1,512}$/;
const SCOPE = /^[\x21\x23-\x5b\x5d-\x7e]{1,64}$/;

type Source = Record<string, string | undefined>;

function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/**
 * Reads `SOCIAL_*`. `allowLoopback`: the development and test opt-in
 * (PALISADE_WEBHOOKS_ALLOW_LOOPBACK, refused in production) under which a provider may be a
 * plain-http server on this machine; otherwise every URL is https. Problems are returned, one
 * line each, never quoting a secret.
 */
export function socialConfig(source: Source, allowLoopback: boolean): { social: SocialConfig; problems: string[] } {
  const problems: string[] = [];
  const providers: SocialProvider[] = [];
  // `NAME_FILE` was resolved by loadConfig (resolveFileSettings) before this reads `NAME`.
  const value = (name: string): string | undefined => source[name]?.trim() || undefined;
  const url = (name: string, fallback: string): string => {
    const raw = value(name) ?? fallback;
    let u: URL;
    try {
      u = new URL(raw);
    } catch {
      problems.push(`${name} is not a URL`);
      return fallback;
    }
    const loopbackHttp = u.protocol === 'http:' && isLoopbackHost(u.hostname);
    if (u.protocol !== 'https:' && !(loopbackHttp && allowLoopback)) {
      problems.push(`${name} must use https (plain http only on loopback, with PALISADE_WEBHOOKS_ALLOW_LOOPBACK=true outside production)`);
    }
    if (u.username || u.password || u.hash) problems.push(`${name} must carry no credentials or fragment`);
    // Kept as typed: an OIDC issuer is compared with the discovery document's character for character.
    return raw;
  };
  const client = (prefix: string): { clientId: string; clientSecret: string } | null => {
    const clientId = value(`${prefix}_CLIENT_ID`);
    const clientSecret = value(`${prefix}_CLIENT_SECRET`);
    if (!clientId && !clientSecret) return null;
    if (!clientId || !clientSecret) {
      problems.push(`${prefix}_CLIENT_ID and ${prefix}_CLIENT_SECRET go together`);
      return null;
    }
    if (!CLIENT_ID.test(clientId)) problems.push(`${prefix}_CLIENT_ID must be printable ASCII without spaces, at most 255 characters`);
    // The message never quotes the secret.
    if (!CLIENT_SECRET.test(clientSecret)) problems.push(`${prefix}_CLIENT_SECRET must be printable ASCII, at most 512 characters`);
    return { clientId, clientSecret };
  };
  const scopes = (name: string, fallback: readonly string[], mustHave?: string): readonly string[] => {
    const raw = value(name);
    if (!raw) return fallback;
    const list = raw.split(/[\s,]+/).filter(Boolean);
    if (list.length === 0 || list.length > 20 || !list.every((s) => SCOPE.test(s))) problems.push(`${name} must be 1 to 20 scope tokens`);
    if (mustHave && !list.includes(mustHave)) problems.push(`${name} must include ${mustHave}`);
    return Object.freeze(list);
  };

  const google = client('SOCIAL_GOOGLE');
  if (google) {
    providers.push({
      id: 'google', name: 'Google', protocol: 'oidc', issuer: url('SOCIAL_GOOGLE_ISSUER', GOOGLE_ISSUER), ...google,
      scopes: scopes('SOCIAL_GOOGLE_SCOPES', ['openid', 'email', 'profile'], 'openid'),
    });
  }
  const github = client('SOCIAL_GITHUB');
  if (github) {
    providers.push({
      id: 'github', name: 'GitHub', protocol: 'github',
      authorizeUrl: url('SOCIAL_GITHUB_AUTHORIZE_URL', GITHUB_AUTHORIZE_URL),
      tokenUrl: url('SOCIAL_GITHUB_TOKEN_URL', GITHUB_TOKEN_URL),
      apiUrl: url('SOCIAL_GITHUB_API_URL', GITHUB_API_URL).replace(/\/+$/, ''),
      ...github,
      scopes: scopes('SOCIAL_GITHUB_SCOPES', ['read:user', 'user:email']),
    });
  }
  for (const id of (source.SOCIAL_OIDC_PROVIDERS ?? '').split(',').map((s) => s.trim()).filter(Boolean)) {
    if (!PROVIDER_ID.test(id)) {
      problems.push(`SOCIAL_OIDC_PROVIDERS: "${id.slice(0, 40)}" is not a provider id (lower case letters, digits and -, 2 to 32)`);
      continue;
    }
    if (id === 'google' || id === 'github' || providers.some((p) => p.id === id)) {
      problems.push(`SOCIAL_OIDC_PROVIDERS: ${id} is named twice (google and github are presets of their own)`);
      continue;
    }
    const prefix = `SOCIAL_OIDC_${id.toUpperCase().replace(/-/g, '_')}`;
    const c = client(prefix);
    const issuer = value(`${prefix}_ISSUER`);
    if (!c || !issuer) {
      problems.push(`${prefix}_ISSUER, ${prefix}_CLIENT_ID and ${prefix}_CLIENT_SECRET are needed for provider ${id}`);
      continue;
    }
    const name = (value(`${prefix}_NAME`) ?? id).slice(0, 64);
    providers.push({
      id, name, protocol: 'oidc', issuer: url(`${prefix}_ISSUER`, issuer), ...c,
      scopes: scopes(`${prefix}_SCOPES`, ['openid', 'email', 'profile'], 'openid'),
    });
  }
  const signUp = source.SOCIAL_SIGN_UP ?? 'true';
  if (signUp !== 'true' && signUp !== 'false') problems.push('SOCIAL_SIGN_UP must be true or false');
  return { social: Object.freeze({ signUp: signUp !== 'false', providers: Object.freeze(providers.map((p) => Object.freeze(p))) }), problems };
}
