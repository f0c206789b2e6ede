import type { LightMyRequestResponse } from 'fastify';
import { ORIGIN, SESSION_COOKIE, type Problem, type TestApp } from './app.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface Client {
  cookie: string;
  call(method: Method, url: string, payload?: object): Promise<LightMyRequestResponse>;
}

/** A signed-in browser: sends an allowed Origin and follows session rotation (privilege changes re-issue the cookie). */
export function client(h: TestApp, cookie: string): Client {
  const name = h.built.cookie.name;
  const c: Client = {
    cookie,
    async call(method, url, payload) {
      const res = await h.built.app.inject({
        method, url, headers: { cookie: c.cookie, origin: ORIGIN }, ...(payload === undefined ? {} : { payload }),
      });
      const set = res.cookies.find((x) => x.name === name);
      if (set) c.cookie = `${name}=${set.value}`;
      return res;
    },
  };
  return c;
}

/** A signed-in browser for `email` (a session issued directly, no argon2 round). */
export const signedIn = async (h: TestApp, email: string): Promise<Client> => client(h, await h.cookieFor(email));

export interface CallOpts {
  cookie?: string;
  payload?: unknown;
  ip?: string;
  headers?: Record<string, string>;
}

/** One request as a browser would send it (allowed Origin), from `ip` when given. */
export function call(h: TestApp, method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: string, o: CallOpts = {}): Promise<LightMyRequestResponse> {
  return h.built.app.inject({
    method,
    url,
    headers: { origin: ORIGIN, ...(o.cookie ? { cookie: o.cookie } : {}), ...o.headers },
    ...(o.payload === undefined ? {} : { payload: o.payload as object }),
    ...(o.ip ? { remoteAddress: o.ip } : {}),
  });
}

export const code = (res: LightMyRequestResponse): string | undefined => (res.headers['content-type']?.toString().includes('json') ? res.json<Problem>().code : undefined);

/** The session cookie a response set, as a Cookie header, or null. */
export function sessionFrom(res: LightMyRequestResponse): string | null {
  const c = res.cookies.find((x) => x.name === SESSION_COOKIE);
  return c ? `${SESSION_COOKIE}=${c.value}` : null;
}

/** Ignores the request id, which differs per answer. */
export const sameProblem = (res: LightMyRequestResponse) => ({ ...res.json<Problem>(), requestId: 'x' });

/** One machine request with an API key as its Bearer token (no cookie, no Origin unless given). */
export function bearer(
  h: TestApp, method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'HEAD', url: string, token: string,
  extra: { payload?: object; headers?: Record<string, string> } = {},
): Promise<LightMyRequestResponse> {
  return h.built.app.inject({ method, url, headers: { authorization: `Bearer ${token}`, ...extra.headers }, ...(extra.payload ? { payload: extra.payload } : {}) });
}
