import { sql } from 'kysely';
import { newId, type DataKeyStore, type FieldRef, type Keyring, type WrappedKey } from '../../crypto/index.js';
import { exec, one, type Tx } from '../../db/database.js';
import { InvariantError } from '../../kernel/errors.js';
import { isUuid, SYSTEM_ORG_ID } from '../../kernel/ids.js';

/**
 * The one encryption envelope. `scope` is an org id (data key in org_keys, under RLS) or a
 * named system scope (system_keys). Callers seal inside their own transaction.
 */
export interface Sealer {
  seal(tx: Tx, ref: FieldRef, plaintext: string): Promise<string>;
  open(tx: Tx, ref: FieldRef, sealed: string): Promise<string>;
  /**
   * A re-sealer for one transaction: opens a value and seals it again under the scope's key
   * `keyId` (the rotation's target), whatever this process still caches as active, so the
   * re-encryption job never writes a value back under the key it moves away from. Keys are
   * read once per resealer, not once per value (a batch would otherwise cost two reads a value).
   */
  resealer(tx: Tx, keyId: string): (ref: FieldRef, sealed: string) => Promise<string>;
  /** An opener for many values in one transaction: each data key is read once (a page of audit events, a stream batch). */
  opener(tx: Tx): (ref: FieldRef, sealed: string) => Promise<string>;
  /** Drops a scope's cached active key (the next seal in this process reads the new one) and zeroes its unwrapped keys. */
  forget(scope: string): void;
  /**
   * The keyed blind index of an email address (normalised: NFC, trimmed, lower case) under the
   * deployment's `blind-index` system key: what a sealed address is looked up and kept unique by.
   * `within` (an org id) makes it an index of that org's only, so the same person invited by two
   * orgs cannot be linked across them from the database; omitted for a deployment-wide lookup.
   */
  emailIndex(tx: Tx, address: string, within?: string): Promise<string>;
  /**
   * The keyed blind index of an email domain (as emailDomain spells it), deployment-wide: how the
   * users of a domain are found (SSO enforcement ends their other sessions) without their
   * addresses in clear. It tells who shares a domain, not which one.
   */
  domainIndex(tx: Tx, domain: string): Promise<string>;
}

/** What the blind-index key is applied to, for an address (and the org it is confined to) or a domain: one spelling, whoever computes it. */
export const emailIndexInput = (address: string, within?: string): string =>
  `email:${within ? `${within.toLowerCase()}:` : ''}${normalEmail(address)}`;
export const domainIndexInput = (domain: string): string => `email-domain:${domain.trim().toLowerCase()}`;

/** The system scope of the blind-index key. */
export const BLIND_INDEX_SCOPE = 'blind-index';

/** One spelling per address for the blind index (the unique index it replaces was on lower(email)). */
export const normalEmail = (address: string): string => address.normalize('NFC').trim().toLowerCase();

/**
 * Any UUID but the nil one names an org, whatever its letter case: an upper-case org id must
 * not fall through to system_keys, which has no RLS (another org could then use the key).
 */
const isOrgScope = (scope: string): boolean => isUuid(scope) && scope !== SYSTEM_ORG_ID;

/** How long a scope's active data key is reused without asking the database (a rotation reaches every instance within this). */
export const ACTIVE_KEY_TTL_MS = 60_000;

interface CachedKey {
  key: WrappedKey;
  until: number;
}

/**
 * The active key of a scope is cached per process, but only once it is known to be committed:
 * a key this very transaction inserted (a first seal) could still roll back, and data sealed
 * under a key that never existed would be lost. `mine` says the row is this transaction's own.
 */
function storeFor(tx: Tx, cache: Map<string, CachedKey>, now: () => number): DataKeyStore {
  return {
    async active(scope) {
      const hit = cache.get(scope);
      if (hit && hit.until > now()) return hit.key;
      const r = isOrgScope(scope)
        ? await one<WrappedKey & { mine: boolean }>(
            tx,
            sql`select id, kek_id as "kekId", wrapped, coalesce(xmin = pg_current_xact_id_if_assigned()::xid, false) as mine
                from org_keys where org_id = ${scope} and active`,
          )
        : await one<WrappedKey & { mine: boolean }>(
            tx,
            sql`select id, kek_id as "kekId", wrapped, coalesce(xmin = pg_current_xact_id_if_assigned()::xid, false) as mine
                from system_keys where scope = ${scope} and active`,
          );
      if (!r) return null;
      const key: WrappedKey = { id: r.id, kekId: r.kekId, wrapped: r.wrapped };
      if (!r.mine) cache.set(scope, { key, until: now() + ACTIVE_KEY_TTL_MS });
      return key;
    },
    async byId(scope, id) {
      if (!isUuid(id)) return null;
      const r = isOrgScope(scope)
        ? await one<WrappedKey>(tx, sql`select id, kek_id as "kekId", wrapped from org_keys where org_id = ${scope} and id = ${id} and destroyed_at is null`)
        : await one<WrappedKey>(tx, sql`select id, kek_id as "kekId", wrapped from system_keys where scope = ${scope} and id = ${id}`);
      return r ?? null;
    },
    async insert(scope, k) {
      if (isOrgScope(scope)) {
        await exec(tx, sql`insert into org_keys (org_id, id, kek_id, wrapped) values (${scope}, ${k.id}, ${k.kekId}, ${k.wrapped})
                           on conflict do nothing`);
        // The org's first key puts it on the data-key job's list (scheduled rotation).
        await exec(tx, sql`insert into data_key_due (org_id, due_at) values (${scope}, now()) on conflict do nothing`);
      } else {
        await exec(tx, sql`insert into system_keys (id, scope, kek_id, wrapped) values (${k.id}, ${scope}, ${k.kekId}, ${k.wrapped})
                           on conflict do nothing`);
      }
    },
  };
}

/** A store whose keys are each read once. */
function memoized(store: DataKeyStore): DataKeyStore {
  const known = new Map<string, Promise<WrappedKey | null>>();
  return {
    ...store,
    byId(scope, id) {
      const k = `${scope}/${id}`;
      let hit = known.get(k);
      if (!hit) known.set(k, (hit = store.byId(scope, id)));
      return hit;
    },
  };
}

/** Org ids in canonical (lower) case, so that the AAD and the key cache agree however the id was spelled. */
const canonical = (ref: FieldRef): FieldRef => (isUuid(ref.scope) ? { ...ref, scope: ref.scope.toLowerCase() } : ref);

export function createSealer(keyring: Keyring, now: () => number = Date.now): Sealer {
  const cache = new Map<string, CachedKey>();
  return {
    seal: (tx, ref, plaintext) => keyring.seal(storeFor(tx, cache, now), canonical(ref), plaintext, newId),
    open: (tx, ref, sealed) => keyring.open(storeFor(tx, cache, now), canonical(ref), sealed),
    opener(tx) {
      const store = memoized(storeFor(tx, cache, now));
      return (ref, sealed) => keyring.open(store, canonical(ref), sealed);
    },
    resealer(tx, keyId) {
      const store = storeFor(tx, cache, now);
      const { byId } = memoized(store);
      return async (ref, sealed) => {
        const r = canonical(ref);
        const target = await byId(r.scope, keyId);
        if (!target) throw new InvariantError(`data key ${keyId} of ${r.scope} is gone`);
        const memo: DataKeyStore = { active: () => Promise.resolve(target), byId, insert: () => Promise.resolve() };
        return keyring.seal(memo, r, await keyring.open(memo, r, sealed), newId);
      };
    },
    emailIndex: (tx, address, within) => keyring.blindIndex(storeFor(tx, cache, now), BLIND_INDEX_SCOPE, emailIndexInput(address, within), newId),
    domainIndex: (tx, domain) => keyring.blindIndex(storeFor(tx, cache, now), BLIND_INDEX_SCOPE, domainIndexInput(domain), newId),
    forget: (scope) => {
      const s = isUuid(scope) ? scope.toLowerCase() : scope;
      cache.delete(s);
      keyring.forgetScope(s);
    },
  };
}
