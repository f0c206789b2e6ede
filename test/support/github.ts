import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createHash, randomBytes } from 'node:crypto';

/** Someone GitHub signs in: their numeric id, login and addresses (as GET /user/emails lists them). */
export interface GithubAccount {
  id: number;
  login: string;
  name?: string;
  emails: { email: string; primary: boolean; verified: boolean }[];
}

export interface GithubClient {
  clientId: string;
  clientSecret: string;
  redirectUri: string;
}

export interface LoopbackGithub {
  /** The base URL: /login/oauth/authorize, /login/oauth/access_token, and the REST API's /user, /user/emails. */
  url: string;
  accounts: Map<string, GithubAccount>;
  /** Every token request's form (for tests that check what the relying party sent). */
  tokenRequests: URLSearchParams[];
  /** The codes and access tokens it handed out (secrets the canary suite looks for). */
  issued: { codes: string[]; tokens: string[] };
  close(): Promise<void>;
}

interface Grant {
  clientId: string;
  redirectUri: string;
  login: string;
  challenge: string | null;
  expiresAt: number;
  used: boolean;
}

const CODE_TTL_MS = 10 * 60_000;

/**
 * A small server that speaks GitHub's OAuth 2 web flow (docs.github.com, "Authorizing OAuth
 * apps") on loopback: the authorize page (a form the user submits as `login`), the code grant
 * with the client secret and PKCE (S256), single-use ten-minute codes answered with GitHub's
 * 200 + `error` on failure, and the REST endpoints GET /user and GET /user/emails for the bearer
 * token. A protocol peer for the relying party, not a mock of it.
 */
export async function startGithub(opts: { clients: GithubClient[]; accounts?: Map<string, GithubAccount>; port?: number }): Promise<LoopbackGithub> {
  const accounts = opts.accounts ?? new Map<string, GithubAccount>();
  const grants = new Map<string, Grant>();
  const tokens = new Map<string, string>();
  const tokenRequests: URLSearchParams[] = [];
  const issued = { codes: [] as string[], tokens: [] as string[] };
  const clientOf = (id: string | null) => opts.clients.find((c) => c.clientId === id);

  const body = (req: http.IncomingMessage): Promise<string> => new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => done(Buffer.concat(chunks).toString('utf8')));
    req.on('error', fail);
  });
  const send = (res: http.ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}) => {
    res.shouldKeepAlive = false;
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(payload));
  };

  async function authorize(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const q = req.method === 'POST' ? new URLSearchParams(await body(req)) : url.searchParams;
    const c = clientOf(q.get('client_id'));
    const redirectUri = q.get('redirect_uri') ?? c?.redirectUri ?? '';
    // GitHub shows an error page (no redirect) for an unknown client or a redirect URI it does not allow.
    if (!c || redirectUri !== c.redirectUri) return send(res, 400, { error: 'redirect_uri_mismatch' });
    const method = q.get('code_challenge_method');
    const challenge = q.get('code_challenge');
    if (challenge && method !== 'S256') return send(res, 400, { error: 'invalid_request' });
    if (req.method !== 'POST') {
      // The consent page: a form carrying the request back with the user's login.
      const hidden = [...q].map(([k, v]) => `<input type="hidden" name="${k}" value="${v.replace(/"/g, '&quot;')}">`).join('');
      res.shouldKeepAlive = false;
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(`<form method="post" action="/login/oauth/authorize">${hidden}<input name="login"></form>`);
      return;
    }
    const back = new URL(redirectUri);
    const state = q.get('state');
    if (state) back.searchParams.set('state', state);
    const login = q.get('login') ?? '';
    if (q.get('deny') === '1' || !accounts.has(login)) {
      back.searchParams.set('error', 'access_denied');
    } else {
      const code = randomBytes(10).toString('hex');
      issued.codes.push(code);
      grants.set(code, { clientId: c.clientId, redirectUri, login, challenge, expiresAt: Date.now() + CODE_TTL_MS, used: false });
      back.searchParams.set('code', code);
    }
    res.shouldKeepAlive = false;
    res.writeHead(302, { location: back.href });
    res.end();
  }

  async function accessToken(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const raw = await body(req);
    const form = String(req.headers['content-type']).startsWith('application/json')
      ? new URLSearchParams(JSON.parse(raw) as Record<string, string>)
      : new URLSearchParams(raw);
    tokenRequests.push(form);
    const json = String(req.headers.accept ?? '').includes('application/json');
    // GitHub answers errors with 200 and an `error` field.
    const answer = (payload: Record<string, string>): void => {
      if (json) return send(res, 200, payload);
      res.shouldKeepAlive = false;
      res.writeHead(200, { 'content-type': 'application/x-www-form-urlencoded' });
      res.end(new URLSearchParams(payload).toString());
    };
    const c = clientOf(form.get('client_id'));
    if (!c || form.get('client_secret') !== c.clientSecret) return answer({ error: 'incorrect_client_credentials' });
    const grant = grants.get(form.get('code') ?? '');
    if (!grant || grant.used || grant.expiresAt < Date.now() || grant.clientId !== c.clientId) return answer({ error: 'bad_verification_code' });
    // Spent at the first attempt, right or wrong (a replay finds it used).
    grant.used = true;
    if (form.get('redirect_uri') && form.get('redirect_uri') !== grant.redirectUri) return answer({ error: 'redirect_uri_mismatch' });
    if (grant.challenge) {
      const verifier = form.get('code_verifier') ?? '';
      if (createHash('sha256').update(verifier).digest('base64url') !== grant.challenge) return answer({ error: 'bad_verification_code' });
    }
    const token = `gho_${randomBytes(18).toString('hex')}`;
    tokens.set(token, grant.login);
    issued.tokens.push(token);
    return answer({ access_token: token, token_type: 'bearer', scope: 'read:user,user:email' });
  }

  function api(req: http.IncomingMessage, res: http.ServerResponse, path: string): void {
    const auth = String(req.headers.authorization ?? '');
    const m = /^(?:Bearer|token) (\S+)$/.exec(auth);
    const login = m ? tokens.get(m[1] as string) : undefined;
    const account = login ? accounts.get(login) : undefined;
    if (!account) return send(res, 401, { message: 'Bad credentials' });
    if (path === '/user') {
      const primary = account.emails.find((e) => e.primary);
      return send(res, 200, { id: account.id, login: account.login, name: account.name ?? null, email: primary?.email ?? null });
    }
    return send(res, 200, account.emails.map((e) => ({ ...e, visibility: e.primary ? 'private' : null })));
  }

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const route = `${req.method} ${url.pathname}`;
    const done = (p: Promise<void> | void) => Promise.resolve(p).catch(() => send(res, 500, { message: 'error' }));
    if (url.pathname === '/login/oauth/authorize') return void done(authorize(req, res, url));
    if (route === 'POST /login/oauth/access_token') return void done(accessToken(req, res));
    if (route === 'GET /user' || route === 'GET /user/emails') return void done(api(req, res, url.pathname));
    send(res, 404, { message: 'Not Found' });
  });
  await new Promise<void>((ready) => server.listen(opts.port ?? 0, '127.0.0.1', ready));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    accounts,
    tokenRequests,
    issued,
    close: () => new Promise<void>((done) => {
      server.closeAllConnections();
      server.close(() => done());
    }),
  };
}

/**
 * A browser at the loopback GitHub: opens the authorize URL, submits its form as `login`, and
 * returns the redirect back to the relying party (not followed), or throws with GitHub's answer.
 */
export async function signInAtGithub(authorizationUrl: string, login: string, opts: { deny?: boolean } = {}): Promise<URL> {
  const page = await fetch(authorizationUrl, { redirect: 'manual' });
  const html = await page.text();
  if (page.status !== 200) throw new Error(`GitHub answered ${page.status}: ${html.slice(0, 200)}`);
  const form = new URLSearchParams();
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) form.set(m[1] as string, (m[2] as string).replace(/&quot;/g, '"'));
  form.set('login', login);
  if (opts.deny) form.set('deny', '1');
  const res = await fetch(new URL('/login/oauth/authorize', authorizationUrl), {
    method: 'POST', body: form.toString(), headers: { 'content-type': 'application/x-www-form-urlencoded' }, redirect: 'manual',
  });
  const location = res.headers.get('location');
  if (res.status !== 302 || !location) throw new Error(`GitHub answered ${res.status} without a redirect`);
  return new URL(location);
}
