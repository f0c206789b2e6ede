import { sql, type RawBuilder } from 'kysely';
import type { FieldRef } from '../../crypto/index.js';
import { one, rows, type Tx } from '../../db/database.js';
import { emailDomain } from '../../kernel/domain-name.js';
import type { Sealer } from '../keys/sealer.js';

/**
 * A person's address and name are sealed at rest (migration 039) under the system scope 'users'
 * (AAD: users / column / user id), and found by keyed blind indexes: `email_index` for the
 * address (sign-in, registration, reset, magic links, SSO and social linking, kept unique) and
 * `email_domain_index` for its domain (SSO enforcement). Nothing in `users` names anyone in clear.
 * Every read and write of those columns goes through here.
 */
export const PEOPLE_SCOPE = 'users';

export interface Person {
  email: string;
  name: string;
}

/** The sealed columns of one users row, as the database holds them. */
export interface SealedPerson {
  id: string;
  email_sealed: string;
  name_sealed: string;
}

const ref = (userId: string, column: 'email_sealed' | 'name_sealed'): FieldRef => ({ scope: PEOPLE_SCOPE, table: 'users', column, row: userId.toLowerCase() });

/** Where an SSO identity's asserted address is sealed (migration 039): the org's key, the link's id. */
export const ssoIdentityEmailRef = (orgId: string, linkId: string): FieldRef =>
  ({ scope: orgId, table: 'sso_identities', column: 'email_sealed', row: linkId });

/** Where a social identity's asserted address is sealed: it belongs to no org, so the accounts' scope. */
export const socialIdentityEmailRef = (linkId: string): FieldRef => ({ scope: PEOPLE_SCOPE, table: 'social_identities', column: 'email_sealed', row: linkId });

/** The columns of `users` that hold a person, for an insert or an update of their address. */
export async function personColumns(sealer: Sealer, tx: Tx, userId: string, person: Person) {
  const domain = emailDomain(person.email);
  // The blind-index key first, then the scope's: every path that makes a first key takes them in
  // this order (a lookup, then an insert; the outbox likewise), so two first uses cannot deadlock.
  const email_index = await sealer.emailIndex(tx, person.email);
  const email_domain_index = domain ? await sealer.domainIndex(tx, domain) : null;
  return {
    email_sealed: await sealer.seal(tx, ref(userId, 'email_sealed'), person.email),
    name_sealed: await sealer.seal(tx, ref(userId, 'name_sealed'), person.name),
    email_index,
    email_domain_index,
  };
}

/** The insert of a new account: `extra` are the other columns (password, verification), by name. */
export async function insertUserSql(
  sealer: Sealer, tx: Tx, userId: string, person: Person,
  extra: { password_hash?: string | null; password_changed_at?: string | null; email_verified_at?: string | null } = {},
): Promise<RawBuilder<unknown>> {
  const c = await personColumns(sealer, tx, userId, person);
  return sql`insert into users (id, email_sealed, name_sealed, email_index, email_domain_index, password_hash, password_changed_at, email_verified_at)
             values (${userId}, ${c.email_sealed}, ${c.name_sealed}, ${c.email_index}, ${c.email_domain_index},
                     ${extra.password_hash ?? null}, ${extra.password_changed_at ?? null}, ${extra.email_verified_at ?? null})`;
}

/**
 * The account of any of `addresses` (an IdP's spelling and its canonical form): one condition on
 * `users`, by blind index.
 */
export async function userWithAnyEmail(sealer: Sealer, tx: Tx, addresses: readonly string[]): Promise<RawBuilder<boolean>> {
  const indexes: string[] = [];
  for (const a of new Set(addresses)) indexes.push(await sealer.emailIndex(tx, a));
  return sql<boolean>`email_index = any (${indexes}::text[])`;
}

/** A condition on `users` (aliased `alias`) that holds for the account of `address`, however it is spelled in case. */
export async function userWithEmail(sealer: Sealer, tx: Tx, address: string, alias = 'users'): Promise<RawBuilder<boolean>> {
  return sql<boolean>`${sql.ref(`${alias}.email_index`)} = ${await sealer.emailIndex(tx, address)}`;
}

/** The condition for the accounts whose address is in one of `domains` (as emailDomain spells them). */
export async function usersInDomains(sealer: Sealer, tx: Tx, domains: readonly string[]): Promise<RawBuilder<boolean>> {
  const indexes: string[] = [];
  for (const d of domains) indexes.push(await sealer.domainIndex(tx, d));
  return sql<boolean>`email_domain_index = any (${indexes}::text[])`;
}

/** Opens people read in one transaction (each data key read once). */
export function personOpener(sealer: Sealer, tx: Tx): (r: SealedPerson) => Promise<Person> {
  const open = sealer.opener(tx);
  return async (r) => ({ email: await open(ref(r.id, 'email_sealed'), r.email_sealed), name: await open(ref(r.id, 'name_sealed'), r.name_sealed) });
}

/** Rows that carry a person's sealed columns, with the person opened beside the rest. */
export async function withPeople<R extends SealedPerson>(sealer: Sealer, tx: Tx, list: readonly R[]): Promise<(Omit<R, 'email_sealed' | 'name_sealed'> & Person)[]> {
  const open = personOpener(sealer, tx);
  const out: (Omit<R, 'email_sealed' | 'name_sealed'> & Person)[] = [];
  for (const r of list) {
    const { email_sealed: _e, name_sealed: _n, ...rest } = r;
    out.push({ ...rest, ...(await open(r)) });
  }
  return out;
}

/** The person of one account, or null when there is none. */
export async function personOf(sealer: Sealer, tx: Tx, userId: string): Promise<Person | null> {
  const r = await one<SealedPerson>(tx, sql`select id, email_sealed, name_sealed from users where id = ${userId}`);
  return r ? personOpener(sealer, tx)(r) : null;
}

/** The people of many accounts, by id (a missing account is absent from the map). */
export async function peopleOf(sealer: Sealer, tx: Tx, userIds: readonly string[]): Promise<Map<string, Person>> {
  if (userIds.length === 0) return new Map();
  const list = await rows<SealedPerson>(tx, sql`select id, email_sealed, name_sealed from users where id = any (${[...userIds]}::uuid[])`);
  const open = personOpener(sealer, tx);
  const out = new Map<string, Person>();
  for (const r of list) out.set(r.id, await open(r));
  return out;
}

/** Sorts by address the way the lists did when the database sorted them (`order by email`): the database cannot any more. */
export const byEmail = (a: { email: string }, b: { email: string }): number => (a.email < b.email ? -1 : a.email > b.email ? 1 : 0);
