import { newId, type DataKeyStore, type Keyring, type WrappedKey } from '../../crypto/index.js';
import type { OwnerConnection } from '../../db/migrate.js';
import { canonicalEmail, emailDomain } from '../../kernel/domain-name.js';
import { isUuid } from '../../kernel/ids.js';
import { invitationEmailRef } from '../tenancy/invitations.js';
import { BLIND_INDEX_SCOPE, domainIndexInput, emailIndexInput, normalEmail } from '../keys/sealer.js';
import { recipientRef } from '../mail/index.js';
import { PEOPLE_SCOPE } from './people.js';

/** The migration that sealed accounts' addresses and names (its file name without `.sql`). */
export const SEALED_PEOPLE_MIGRATION = '039_sealed_people';

/**
 * The data keys over the migrating owner's connection, as the sealer reads them: system scopes
 * from system_keys (no RLS), an org's from org_keys, which the caller has made readable to the
 * owner for its transaction (FORCE lifted: the owner may not bypass RLS).
 */
export function ownerStore(tx: OwnerConnection): DataKeyStore {
  return {
    async active(scope) {
      const [r] = isUuid(scope)
        ? await tx.query<WrappedKey>(`select id, kek_id as "kekId", wrapped from org_keys where org_id = $1 and active`, [scope])
        : await tx.query<WrappedKey>(`select id, kek_id as "kekId", wrapped from system_keys where scope = $1 and active`, [scope]);
      return r ?? null;
    },
    async byId(scope, id) {
      const [r] = isUuid(scope)
        ? await tx.query<WrappedKey>(`select id, kek_id as "kekId", wrapped from org_keys where org_id = $1 and id = $2 and destroyed_at is null`, [scope, id])
        : await tx.query<WrappedKey>(`select id, kek_id as "kekId", wrapped from system_keys where scope = $1 and id = $2`, [scope, id]);
      return r ?? null;
    },
    async insert(scope, k) {
      if (isUuid(scope)) {
        await tx.query(`insert into org_keys (org_id, id, kek_id, wrapped) values ($1, $2, $3, $4) on conflict do nothing`, [scope, k.id, k.kekId, k.wrapped]);
        await tx.query(`insert into data_key_due (org_id, due_at) values ($1, now()) on conflict do nothing`, [scope]);
      } else {
        await tx.query(`insert into system_keys (id, scope, kek_id, wrapped) values ($1, $2, $3, $4) on conflict do nothing`, [k.id, scope, k.kekId, k.wrapped]);
      }
    },
  };
}

/**
 * Invitations made before migration 037 kept their address in clear, and nothing deletes an
 * expired or accepted invitation: they are sealed here with their org's key and indexed per org,
 * as invitations.ts seals new ones (review of 039, finding 2). Returns how many.
 */
async function sealOldInvitations(tx: OwnerConnection, keyring: Keyring, store: DataKeyStore): Promise<number> {
  await tx.script('alter table invitations no force row level security; alter table org_keys no force row level security');
  const list = await tx.query<{ org_id: string; id: string; email: string }>(
    `select org_id::text as org_id, id::text as id, email from invitations where email_sealed is null and email <> '' order by org_id, id for update`);
  for (const i of list) {
    await tx.query(`update invitations set email = '', email_sealed = $3, email_index = $4 where org_id = $1 and id = $2`, [
      i.org_id, i.id,
      await keyring.seal(store, invitationEmailRef(i.org_id, i.id), i.email, newId),
      await keyring.blindIndex(store, BLIND_INDEX_SCOPE, emailIndexInput(i.email, i.org_id), newId),
    ]);
  }
  await tx.script('alter table invitations force row level security; alter table org_keys force row level security');
  return list.length;
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
    // The old unique index was on lower(email); the normalised form also folds Unicode forms and
    // spaces, and SSO matches an address in its canonical form too (an IDNA domain, no trailing
    // dot: review of 039, finding 6). Two accounts that one address reaches are refused.
    for (const spelling of new Set([normalEmail(u.email), normalEmail(canonicalEmail(u.email) ?? u.email)])) {
      const twin = seen.get(spelling);
      if (twin && twin !== u.id) throw new Error(`migration 039: accounts ${twin} and ${u.id} have the same address once normalised; merge or rename one first`);
      seen.set(spelling, u.id);
    }
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
  await sealOldInvitations(tx, keyring, store);
  await tx.script(`alter table users drop column email, drop column name;
    alter table users alter column email_sealed set not null, alter column name_sealed set not null, alter column email_index set not null;
    alter table mail_outbox drop column to_address;
    alter table mail_outbox alter column to_sealed set not null, alter column to_index set not null`);
  return users.length;
}
