import { expect } from 'vitest';
import { ORIGIN, type TestApp } from '../support/app.js';
import { newId } from '../../src/crypto/index.js';

export { client, type Client, type Method } from '../support/client.js';
import { client } from '../support/client.js';

export async function newUser(h: TestApp, orgId?: string, role?: string, restricted = false): Promise<{ id: string; email: string }> {
  const id = newId();
  const email = `u-${id.slice(0, 8)}@example.test`;
  await h.t.owner.query('insert into users (id, email, name) values ($1, $2, $3)', [id, email, 'Test user']);
  if (orgId && role) await h.t.owner.query('insert into memberships (org_id, user_id, role, restricted) values ($1, $2, $3, $4)', [orgId, id, role, restricted]);
  return { id, email };
}

export const as = async (h: TestApp, email: string) => client(h, await h.cookieFor(email));
export { expect, ORIGIN };
