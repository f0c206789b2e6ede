/**
 * Users and orgs written for a test: a user with a real password (written directly, as an account
 * that verified its address long ago), a bare user with an optional membership, an org owned by a
 * fresh user. test/support/accounts.ts `signUp` is the real registration flow.
 */
import { newId } from '../../src/crypto/index.js';
import { hashPassword } from '../../src/domains/identity/index.js';
import type { TestApp } from './app.js';
import { call } from './client.js';

export const PASSWORD = 'correct horse battery staple 42';
export const WRONG = 'incorrect horse battery staple 42';

let hashed: Promise<string> | null = null;
let serial = 0;

export interface TestUser {
  id: string;
  email: string;
  password: string;
}

/**
 * A fresh user with PASSWORD (one argon2 hash per process), optionally a member of `orgId`.
 * Written directly, as an account that verified its address long ago: these suites are about
 * lockout, factors and limits, and registering through the API would spend the very limits they
 * measure (test/support/accounts.ts `signUp` is the real flow).
 */
export async function passwordUser(h: TestApp, orgId?: string, role = 'member'): Promise<TestUser> {
  hashed ??= hashPassword(PASSWORD);
  const id = newId();
  const email = `ap-${(serial++).toString(36)}-${id.slice(0, 8)}@example.test`;
  await h.insertUser({ id, email, name: 'AP user', passwordHash: await hashed, verified: true });
  if (orgId) await h.t.owner.query('insert into memberships (org_id, user_id, role) values ($1, $2, $3)', [orgId, id, role]);
  return { id, email, password: PASSWORD };
}

/** A fresh org owned by a fresh user (created through the API). */
export async function freshOrg(h: TestApp): Promise<{ orgId: string; owner: TestUser; cookie: string }> {
  const owner = await passwordUser(h);
  const cookie = await h.cookieFor(owner.email);
  const res = await call(h, 'POST', '/api/orgs', { cookie, payload: { name: 'AP org', slug: `ap-${newId().slice(0, 12)}` } });
  if (res.statusCode !== 201) throw new Error(`org creation failed: ${res.statusCode} ${res.body}`);
  return { orgId: res.json<{ id: string }>().id, owner, cookie };
}

/** A user without a password (sign in with `h.cookieFor`), optionally a member of `orgId` with `role`. */
export async function newUser(h: TestApp, orgId?: string, role?: string, restricted = false): Promise<{ id: string; email: string }> {
  const id = newId();
  const email = `u-${id.slice(0, 8)}@example.test`;
  await h.insertUser({ id, email, name: 'Test user' });
  if (orgId && role) await h.t.owner.query('insert into memberships (org_id, user_id, role, restricted) values ($1, $2, $3, $4)', [orgId, id, role, restricted]);
  return { id, email };
}
