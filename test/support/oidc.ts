import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateKeyPairSync } from 'node:crypto';
import Provider, { type ClientMetadata, type JWK } from 'oidc-provider';

export interface LoopbackIdp {
  /** The issuer URL (http on loopback). */
  issuer: string;
  provider: Provider;
  close(): Promise<void>;
}

/** A fresh RSA signing key for an IdP, as a private JWK named `kid`. */
export function rsaSigningKey(kid: string): JWK {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...(privateKey.export({ format: 'jwk' }) as JWK), kid, use: 'sig', alg: 'RS256' };
}

/** Someone the IdP signs in: the claims it releases for them. */
export interface IdpAccount {
  sub: string;
  email?: string;
  email_verified?: boolean;
  name?: string;
  groups?: string[];
}

/**
 * A real OpenID Provider (oidc-provider 8) on loopback: discovery, authorization with PKCE,
 * token and JWKS endpoints, signing ID tokens with its own keys.
 */
export async function startOidcProvider(opts: {
  clients: ClientMetadata[];
  accounts?: Map<string, IdpAccount>;
  /** The same port as an IdP that was stopped: its issuer again (a restart, e.g. with rotated keys). */
  port?: number;
  /** Its signing keys (private JWKs with a kid), the first one signing; absent: oidc-provider's development key. */
  keys?: JWK[];
  /** How long its ID tokens live, in seconds (oidc-provider's default is an hour). */
  idTokenTtl?: number;
  /** A hostile IdP: rewrites the ID token of its token answers to this client (oidc-provider itself never sends `alg: none`). */
  tamperIdToken?: { clientId: string; rewrite: (idToken: string) => string };
}): Promise<LoopbackIdp> {
  const server = http.createServer();
  await new Promise<void>((ready) => server.listen(opts.port ?? 0, '127.0.0.1', ready));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const accounts = opts.accounts ?? new Map<string, IdpAccount>();
  const provider = new Provider(issuer, {
    clients: opts.clients,
    pkce: { required: () => true, methods: ['S256'] },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
    findAccount: (_ctx, sub) => {
      const account = accounts.get(sub);
      return account ? { accountId: sub, claims: () => ({ ...account }) } : undefined;
    },
    features: { devInteractions: { enabled: true } },
    // A client registered with `id_token_signed_response_alg: 'HS256'` gets tokens signed with its
    // client secret instead of the IdP's key: the relying party must refuse them.
    enabledJWA: { idTokenSigningAlgValues: ['RS256', 'HS256'] },
    ...(opts.idTokenTtl ? { ttl: { IdToken: opts.idTokenTtl } } : {}),
    ...(opts.keys ? { jwks: { keys: opts.keys } } : {}),
  });
  const tamper = opts.tamperIdToken;
  if (tamper) {
    provider.use(async (ctx, next) => {
      await next();
      const body = ctx.body as { id_token?: unknown } | undefined;
      if (ctx.path === '/token' && ctx.oidc?.client?.clientId === tamper.clientId && typeof body?.id_token === 'string') {
        ctx.body = { ...body, id_token: tamper.rewrite(body.id_token) };
      }
    });
  }
  const handle = provider.callback();
  // Every answer closes its connection: a test that restarts the IdP on the same port (key
  // rotation) would otherwise reuse a pooled keep-alive socket the old server already closed.
  server.on('request', (req, res) => {
    res.shouldKeepAlive = false;
    void handle(req, res);
  });
  return {
    issuer,
    provider,
    close: () => new Promise<void>((done) => {
      server.closeAllConnections();
      server.close(() => done());
    }),
  };
}

/**
 * A browser at the loopback IdP: follows `authorizationUrl` through oidc-provider's development
 * login and consent pages as `accountId` (any password), with its own cookie jar, and returns
 * the redirect back to the relying party (not followed), or the IdP's last answer when it
 * does not redirect there.
 */
export async function signInAtIdp(authorizationUrl: string, accountId: string, redirectPrefix: string): Promise<URL> {
  const jar = new Map<string, string>();
  const remember = (res: Response) => {
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair?.indexOf('=') ?? -1;
      if (pair && eq > 0) jar.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
  };
  const cookie = () => [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
  let url = authorizationUrl;
  let init: RequestInit = {};
  for (let hop = 0; hop < 20; hop++) {
    const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string> | undefined), cookie: cookie() } });
    remember(res);
    const location = res.headers.get('location');
    if (location) {
      const next = new URL(location, url);
      if (next.href.startsWith(redirectPrefix)) return next;
      url = next.href;
      init = {};
      continue;
    }
    const html = await res.text();
    const action = /action="([^"]+)"/.exec(html)?.[1];
    const prompt = /name="prompt" value="([a-z]+)"/.exec(html)?.[1];
    if (!action || !prompt) throw new Error(`the IdP answered ${res.status} without a form: ${html.slice(0, 300)}`);
    const form = new URLSearchParams({ prompt, ...(prompt === 'login' ? { login: accountId, password: 'any' } : {}) });
    url = new URL(action, url).href;
    init = { method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' } };
  }
  throw new Error('the IdP kept redirecting');
}

/** The same claims, unsigned: the header says `alg: none` and the signature is empty. */
export function unsignedCopy(idToken: string): string {
  const [, payload] = idToken.split('.');
  return `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload ?? ''}.`;
}
