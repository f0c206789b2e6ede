import { newId, type DataKeyStore, type Keyring, type WrappedKey } from '../../crypto/index.js';
import type { OwnerConnection } from '../../db/migrate.js';
import { emailDomain } from '../../kernel/domain-name.js';
import { BLIND_INDEX_SCOPE, domainIndexInput, emailIndexInput } from '../keys/sealer.js';
import { recipientRef } from '../mail/index.js';
import { PEOPLE_SCOPE } from './people.js';

/** The migration that sealed accounts' addresses and names (its file name without `.sql`). */
export const SEALED_PEOPLE_MIGRATION = '039_sealed_people';

/** The system keys (system_keys has no RLS) over the migrating owner's connection, as the sealer reads them. */
export function ownerStore(tx: OwnerConnection): DataKeyStore {
  return {
    async active(scope) {
      const [r] = await tx.query<WrappedKey>(`select id, kek_id as "kekId", wrapped from system_keys where scope = $1 and active`, [scope]);
      return r ?? null;
    },
    async byId(scope, id) {
      const [r] = await tx.query<WrappedKey>(`select id, kek_id as "kekId", wrapped from system_keys where scope = $1 and id = $2`, [scope, id]);
      return r ?? null;
    },
    async insert(scope, k) {
      await tx.query(`insert into system_keys (id, scope, kek_id, wrapped) values ($1, $2, $3, $4) on conflict do nothing`, [k.id, scope, k.kekId, k.wrapped]);
    },
  };
}

/**
 * Migration 039's keyed step: seals every account's address and name and the outbox's recipients
 * as the running code does (same scopes, AADs and blind-index inputs), in the migration's
 * transaction, then drops the clear columns. Returns how many accounts it sealed.
 */
export async function sealPeople(tx: OwnerConnection, keyring: Keyring): Promise<number> {
  const store = ownerStore(tx);
  const users = await tx.query<{ id: string; email: string; name: string }>(`select id::text as id, email, name from users order by id for update`);
  const seen = new Map<string, string>();
  for (const u of users) {
    const index = await keyring.blindIndex(store, BLIND_INDEX_SCOPE, emailIndexInput(u.email), newId);
    // The old unique index was on lower(email); the normalised form also folds Unicode forms and spaces.
    const twin = seen.get(index);
    if (twin) throw new Error(`migration 039: accounts ${twin} and ${u.id} have the same address once normalised; merge or rename one first`);
    seen.set(index, u.id);
    const domain = emailDomain(u.email);
    await tx.query(
      `update users set email_sealed = $2, name_sealed = $3, email_index = $4, email_domain_index = $5 where id = $1`,
      [
        u.id,
        await keyring.seal(store, { scope: PEOPLE_SCOPE, table: 'users', column: 'email_sealed', row: u.id }, u.email, newId),
        await keyring.seal(store, { scope: PEOPLE_SCOPE, table: 'users', column: 'name_sealed', row: u.id }, u.name, newId),
        index,
        domain ? await keyring.blindIndex(store, BLIND_INDEX_SCOPE, domainIndexInput(domain), newId) : null,
      ],
    );
  }
  const mail = await tx.query<{ id: string; to_address: string }>(`select id::text as id, to_address from mail_outbox order by id for update`);
  for (const m of mail) {
    await tx.query(`update mail_outbox set to_sealed = $2, to_index = $3 where id = $1`, [
      m.id,
      await keyring.seal(store, recipientRef(m.id), m.to_address, newId),
      await keyring.blindIndex(store, BLIND_INDEX_SCOPE, emailIndexInput(m.to_address), newId),
    ]);
  }
  await tx.script(`alter table users drop column email, drop column name;
    alter table users alter column email_sealed set not null, alter column name_sealed set not null, alter column email_index set not null;
    alter table mail_outbox drop column to_address;
    alter table mail_outbox alter column to_sealed set not null, alter column to_index set not null`);
  return users.length;
}
