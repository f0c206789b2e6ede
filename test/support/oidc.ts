import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createPrivateKey, generateKeyPairSync, sign } from 'node:crypto';
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
  tamperIdToken?: { clientId: string; rewrite: (idToken: string) => string } | { clientId: string; rewrite: (idToken: string) => string }[];
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
  const tampers = opts.tamperIdToken ? [opts.tamperIdToken].flat() : [];
  if (tampers.length > 0) {
    provider.use(async (ctx, next) => {
      await next();
      const body = ctx.body as { id_token?: unknown } | undefined;
      const tamper = tampers.find((t) => t.clientId === ctx.oidc?.client?.clientId);
      if (ctx.path === '/token' && tamper && typeof body?.id_token === 'string') {
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

/** The same claims and header (kid included), signed RS256 by another key than the IdP's: a forger's. */
export function forgedCopy(idToken: string): string {
  const [header = '', payload = ''] = idToken.split('.');
  const forger = createPrivateKey({ key: rsaSigningKey('forger') as import('node:crypto').JsonWebKey, format: 'jwk' });
  return `${header}.${payload}.${sign('sha256', Buffer.from(`${header}.${payload}`), forger).toString('base64url')}`;
}

/** The same claims, unsigned: the header says `alg: none` and the signature is empty. */
export function unsignedCopy(idToken: string): string {
  const [, payload] = idToken.split('.');
  return `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url')}.${payload ?? ''}.`;
}

/** What the multi-tenant IdP puts in a person's ID token: their tenant, and the issuer it signs with. */
export interface TenantClaims {
  /** The `tid` claim; absent: none. */
  tid?: string;
  /** The `iss` claim; absent: the template with `tid` filled in (what Entra ID does). */
  iss?: string;
  /** Signed by another key than the provider's (a forger's), with the same kid. */
  forged?: boolean;
}

export interface MultiTenantIdp {
  /** What an admin configures: the `organizations` endpoint, whose document names the template issuer. */
  issuer: string;
  /** The template its discovery document names: `…/{tenantid}/v2.0`. */
  template: string;
  /** A tenant's own issuer. */
  tenantIssuer(tid: string): string;
  provider: LoopbackIdp;
  close(): Promise<void>;
}

/**
 * A multi-tenant OpenID Provider shaped like Microsoft Entra ID's `organizations` endpoint: a small
 * front on loopback serves `/organizations/v2.0/.well-known/openid-configuration` with the template
 * issuer `…/{tenantid}/v2.0` (and no `iss` response parameter, which Entra does not send); the real
 * oidc-provider behind it does everything else, and its ID tokens are re-signed with its own key
 * carrying each person's `tid` and tenant issuer (`tenantOf`), as Entra's tokens do. oidc-provider's
 * issuer is fixed, hence the rewrite.
 */
export async function startMultiTenantIdp(opts: {
  clients: ClientMetadata[];
  accounts: Map<string, IdpAccount>;
  tenantOf(sub: string): TenantClaims;
}): Promise<MultiTenantIdp> {
  const key = rsaSigningKey('entra-1');
  const front = http.createServer();
  await new Promise<void>((ready) => front.listen(0, '127.0.0.1', ready));
  const base = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
  const template = `${base}/{tenantid}/v2.0`;
  const signer = createPrivateKey({ key: key as import('node:crypto').JsonWebKey, format: 'jwk' });
  const forger = createPrivateKey({ key: rsaSigningKey('entra-1') as import('node:crypto').JsonWebKey, format: 'jwk' });
  const clientId = String(opts.clients[0]?.client_id);
  const provider = await startOidcProvider({
    clients: opts.clients, accounts: opts.accounts, keys: [key],
    tamperIdToken: {
      clientId,
      rewrite: (idToken) => {
        const [header = '', payload = ''] = idToken.split('.');
        const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Record<string, unknown>;
        const tenant = opts.tenantOf(String(claims.sub));
        delete claims.tid;
        if (tenant.tid !== undefined) claims.tid = tenant.tid;
        claims.iss = tenant.iss ?? template.replace('{tenantid}', tenant.tid ?? '');
        const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
        return `${input}.${sign('sha256', Buffer.from(input), tenant.forged ? forger : signer).toString('base64url')}`;
      },
    },
  });
  front.on('request', (req, res) => {
    res.shouldKeepAlive = false;
    if (req.method !== 'GET' || req.url !== '/organizations/v2.0/.well-known/openid-configuration') {
      res.writeHead(404).end();
      return;
    }
    void fetch(`${provider.issuer}/.well-known/openid-configuration`).then(async (r) => {
      const doc = (await r.json()) as Record<string, unknown>;
      delete doc.authorization_response_iss_parameter_supported;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ...doc, issuer: template }));
    }, () => res.writeHead(502).end());
  });
  return {
    issuer: `${base}/organizations/v2.0`,
    template,
    tenantIssuer: (tid) => template.replace('{tenantid}', tid),
    provider,
    close: async () => {
      front.closeAllConnections();
      await new Promise<void>((done) => front.close(() => done()));
      await provider.close();
    },
  };
}
