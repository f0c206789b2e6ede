import * as client from 'openid-client';
import { safeEqual } from '../../crypto/index.js';
import type { SocialGithubProvider } from '../../config/index.js';
import { CallbackFailed, type EgressFetch } from '../sso/index.js';
import type { ProviderFlow, SocialIdentity } from './providers.js';

const API_HEADERS = { accept: 'application/vnd.github+json', 'x-github-api-version': '2022-11-28', 'user-agent': 'palisade' };

/**
 * GitHub's OAuth 2 web flow (it has no OpenID Connect for users): the authorization code with
 * state and PKCE (S256), redeemed at the token endpoint with the client secret; the identity is
 * the numeric id of GET /user (never the login, which its owner can rename) and the address is
 * the primary one of GET /user/emails, counted as verified only when GitHub says it is.
 */
export function githubProvider(p: SocialGithubProvider, egress: EgressFetch): ProviderFlow {
  const issuer = new URL(p.authorizeUrl).origin;

  async function json(res: Response, what: string): Promise<unknown> {
    if (!res.ok) throw new CallbackFailed(`the identity provider answered ${res.status} to ${what}`);
    try {
      return await res.json();
    } catch {
      throw new CallbackFailed(`the identity provider\u2019s answer to ${what} is not JSON`);
    }
  }

  async function call(url: string, init: Parameters<EgressFetch>[1], what: string): Promise<unknown> {
    let res: Response;
    try {
      res = await egress(url, init);
    } catch (err) {
      const reason = (err as { reason?: unknown }).reason;
      throw new CallbackFailed(`the identity provider could not be reached${typeof reason === 'string' ? ` (${reason})` : ''}`);
    }
    return json(res, what);
  }

  return {
    async begin(redirectUri) {
      const verifier = client.randomPKCECodeVerifier();
      const state = client.randomState();
      const url = new URL(p.authorizeUrl);
      url.searchParams.set('client_id', p.clientId);
      url.searchParams.set('redirect_uri', redirectUri);
      url.searchParams.set('scope', p.scopes.join(' '));
      url.searchParams.set('state', state);
      url.searchParams.set('code_challenge', await client.calculatePKCECodeChallenge(verifier));
      url.searchParams.set('code_challenge_method', 'S256');
      return { url: url.href, state, verifier };
    },

    async redeem(callbackUrl, checks): Promise<SocialIdentity> {
      const q = callbackUrl.searchParams;
      const error = q.get('error');
      if (error) throw new CallbackFailed(/^[a-z_]{1,60}$/.test(error) ? `the identity provider refused the sign-in (${error})` : 'the identity provider refused the sign-in');
      const state = q.get('state') ?? '';
      if (!safeEqual(state, checks.state)) throw new CallbackFailed('the answer is not for this sign-in (state differs)');
      const code = q.get('code');
      if (!code) throw new CallbackFailed('the identity provider sent no authorization code');
      const redirectUri = `${callbackUrl.origin}${callbackUrl.pathname}`;
      const token = await call(p.tokenUrl, {
        method: 'POST',
        headers: { accept: 'application/json', 'content-type': 'application/x-www-form-urlencoded', 'user-agent': 'palisade' },
        body: new URLSearchParams({ client_id: p.clientId, client_secret: p.clientSecret, code, redirect_uri: redirectUri, code_verifier: checks.verifier }),
      }, 'the code');
      const t = (token ?? {}) as { access_token?: unknown; error?: unknown };
      // GitHub answers a spent, expired or foreign code with 200 and an `error` field.
      if (typeof t.error === 'string') {
        throw new CallbackFailed(/^[a-z_]{1,60}$/.test(t.error) ? `the identity provider refused the sign-in (${t.error})` : 'the identity provider refused the sign-in');
      }
      if (typeof t.access_token !== 'string' || t.access_token.length === 0 || t.access_token.length > 512) {
        throw new CallbackFailed('the identity provider sent no access token');
      }
      const auth = { ...API_HEADERS, authorization: `Bearer ${t.access_token}` };
      const user = (await call(`${p.apiUrl}/user`, { headers: auth }, 'the user request')) as { id?: unknown; name?: unknown; login?: unknown } | null;
      const id = user?.id;
      if (!(typeof id === 'number' && Number.isSafeInteger(id) && id > 0) && !(typeof id === 'string' && /^[0-9]{1,20}$/.test(id))) {
        throw new CallbackFailed('the identity provider\u2019s user has no id');
      }
      const emails = await call(`${p.apiUrl}/user/emails`, { headers: auth }, 'the email request');
      const primary = Array.isArray(emails)
        ? (emails as { email?: unknown; primary?: unknown; verified?: unknown }[]).find((e) => e && e.primary === true && typeof e.email === 'string')
        : undefined;
      const email = typeof primary?.email === 'string' && primary.email.length <= 254 ? primary.email : null;
      const name = typeof user?.name === 'string' && user.name ? user.name : typeof user?.login === 'string' ? user.login : null;
      return {
        issuer,
        subject: String(id),
        email,
        // Only GitHub's explicit true: an unverified primary address proves nothing about the mailbox.
        emailVerified: email !== null && primary?.verified === true,
        name: name ? name.slice(0, 200) : null,
      };
    },
  };
}
