import type { LightMyRequestResponse } from 'fastify';
import { ORIGIN, type TestApp } from './app.js';

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
