import type { LightMyRequestResponse } from 'fastify';
import { expect } from 'vitest';
import { ORIGIN, type TestApp } from '../support/app.js';
import { newId } from '../../src/crypto/index.js';

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
export interface Client { cookie: string; call(method: Method, url: string, payload?: object): Promise<LightMyRequestResponse>; }

export function client(h: TestApp, cookie: string): Client {
  const name = h.built.cookie.name;
  const c: Client = {
    cookie,
    async call(method, url, payload) {
      const res = await h.built.app.inject({ method, url, headers: { cookie: c.cookie, origin: ORIGIN }, ...(payload === undefined ? {} : { payload }) });
      const set = res.cookies.find((x) => x.name === name);
      if (set) c.cookie = `${name}=${set.value}`;
      return res;
    },
  };
  return c;
}

export async function newUser(h: TestApp, orgId?: string, role?: string, restricted = false): Promise<{ id: string; email: string }> {
  const id = newId();
  const email = `u-${id.slice(0, 8)}@example.test`;
  await h.t.owner.query('insert into users (id, email, name) values ($1, $2, $3)', [id, email, 'Test user']);
  if (orgId && role) await h.t.owner.query('insert into memberships (org_id, user_id, role, restricted) values ($1, $2, $3, $4)', [orgId, id, role, restricted]);
  return { id, email };
}

export const as = async (h: TestApp, email: string) => client(h, await h.cookieFor(email));
export { expect, ORIGIN };
