-- Personal data sealed at rest (issue 14): an account's address and name are sealed under the
-- system scope 'users' (AAD: users / email_sealed or name_sealed / user id) and found by keyed
-- blind indexes (HMAC-SHA-256 under the deployment's blind-index key, which the database never
-- holds): email_index, of the normalised address, is what sign-in, registration, resets, magic
-- links and SSO/social linking look up and what keeps addresses unique; email_domain_index, of
-- its domain, is how SSO enforcement finds a domain's accounts. The clear columns go.
--
-- SQL cannot seal: the process that migrates holds the keys and seals the accounts that exist
-- (identity/seal-people.ts), in this migration's transaction, then drops the clear columns.
do $$
begin
  if (exists (select 1 from users) or exists (select 1 from mail_outbox)) and coalesce(current_setting('palisade.keyed_steps', true), '') <> 'on' then
    raise exception 'migration 039 seals the existing accounts'' addresses and names with the keys: apply it with palisade migrate or palisade serve';
  end if;
end $$;

alter table users
  add column email_sealed text,
  add column name_sealed text,
  add column email_index text,
  add column email_domain_index text;
create unique index users_email_index_key on users (email_index);
create index users_email_domain_idx on users (email_domain_index);

-- Without keys there is nobody to seal (checked above): the clear columns go now. With them the
-- keyed step drops them once it has sealed what they held.
do $$
begin
  if coalesce(current_setting('palisade.keyed_steps', true), '') <> 'on' then
    alter table users drop column email, drop column name;
    alter table users alter column email_sealed set not null, alter column name_sealed set not null, alter column email_index set not null;
  end if;
end $$;

-- The per-request read no longer carries the address (nothing on that path needs it, and it is
-- sealed now): the routes that show it open it.
drop function palisade_session_in_org(text, uuid);
create function palisade_session_in_org(p_token_hash text, p_org uuid)
returns table (id uuid, user_id uuid, created_at timestamptz, last_seen_at timestamptz,
               absolute_expires_at timestamptz, revoked_at timestamptz, rotate_pending boolean,
               longest_idle_seconds integer, ip text, user_agent text, epoch integer, user_epoch integer,
               mfa_enabled boolean, mfa_verified boolean, stepped_up_at timestamptz,
               role text, custom_role_id uuid, restricted boolean, sessions_revoked_at timestamptz,
               custom_name text, custom_permissions text[], session_idle_seconds integer,
               session_absolute_seconds integer, project_ids text[], mfa_enforced_from timestamptz,
               admin_ip_allowlist text[], purge_after timestamptz, bound_user_id text, bound_project_ids text)
language plpgsql volatile security invoker set search_path = public, pg_temp as $$
begin
  return query
  select s.id, s.user_id, s.created_at, s.last_seen_at, s.absolute_expires_at, s.revoked_at,
         s.rotate_pending, s.longest_idle_seconds, s.ip, s.user_agent, s.epoch, u.session_epoch,
         u.mfa_enabled, s.mfa_verified, s.stepped_up_at,
         mem.role, mem.custom_role_id, mem.restricted, mem.sessions_revoked_at, mem.custom_name,
         mem.custom_permissions, mem.session_idle_seconds, mem.session_absolute_seconds, mem.project_ids,
         mem.mfa_enforced_from, mem.admin_ip_allowlist, mem.purge_after,
         set_config('palisade.user_id', s.user_id::text, true),
         set_config('palisade.project_ids', case when mem.role is null then ''
           when mem.project_ids is null then '*' else array_to_string(mem.project_ids, ',') end, true)
  from sessions s
  join users u on u.id = s.user_id
  left join lateral palisade_membership(p_org, s.user_id) mem on true
  where s.token_hash = p_token_hash;
end $$;

-- The outbox's recipient is sealed too (AAD: mail_outbox / to_sealed / id), beside the body it
-- already sealed, and indexed like an account's address: the erasure (035) removed the mail
-- queued to the account's address, which it read in clear, and now matches the same index.
alter table mail_outbox add column to_sealed text, add column to_index text;
create index mail_outbox_to_index_idx on mail_outbox (to_index);
do $$
begin
  if coalesce(current_setting('palisade.keyed_steps', true), '') <> 'on' then
    alter table mail_outbox drop column to_address;
    alter table mail_outbox alter column to_sealed set not null, alter column to_index set not null;
  end if;
end $$;

create or replace function palisade_erase_member(p_org uuid, p_user uuid) returns text
language plpgsql security definer set search_path = pg_catalog as $$
declare
  bound uuid := nullif(current_setting('palisade.org_id', true), '')::uuid;
  caller text := current_setting('palisade.user_id', true);
  elsewhere boolean;
  address_index text;
begin
  if bound is null or bound <> p_org then
    raise exception 'palisade_erase_member needs its org bound in the transaction' using errcode = 'insufficient_privilege';
  end if;
  select u.email_index into address_index from public.users u where u.id = p_user for update;
  delete from public.memberships where org_id = p_org and user_id = p_user;
  if not found then
    raise exception 'not a member of the org' using errcode = 'no_data_found';
  end if;
  perform set_config('palisade.user_id', p_user::text, true);
  select exists (select 1 from public.memberships where user_id = p_user) into elsewhere;
  perform set_config('palisade.user_id', coalesce(caller, ''), true);
  if elsewhere then
    return 'kept';
  end if;
  delete from public.mail_outbox where to_index = address_index;
  delete from public.users where id = p_user;
  return 'deleted';
end $$;

-- What an identity provider asserted as the address of a linked identity (shown to admins and to
-- the user, never used for routing) is sealed too: SSO identities with their org's data key (AAD:
-- org / sso_identities / email_sealed / id), social identities, which belong to no org, under the
-- 'users' scope. Each row gets an id for its AAD and for the data-key rotation's walk. What was
-- kept in clear is dropped, not sealed (SQL cannot): the next sign-in through the identity
-- stores it again. FORCE is lifted for that one statement: the migrating owner may not bypass
-- row-level security (a managed database's usually does not), and with no org bound the tenant
-- policy would match no row and leave every address in place (review of 039, finding 1).
alter table sso_identities add column id uuid not null default gen_random_uuid(), add column email_sealed text;
create unique index sso_identities_id_key on sso_identities (org_id, id);
alter table sso_identities no force row level security;
update sso_identities set email = '';
alter table sso_identities force row level security;
alter table social_identities add column id uuid not null default gen_random_uuid(), add column email_sealed text;
create unique index social_identities_id_key on social_identities (id);
update social_identities set email = '';

-- A message that reached its end (sent, or failed for good) keeps its status and times, not its
-- recipient or body: a copy of the database must not list which mails an account received and
-- when, nor tie two orgs' invitations to one person by their shared index (review of 039,
-- finding 4). The runtime role may empty those three columns then, and change them in no other
-- way (it still cannot redirect a queued mail).
grant update (to_sealed, to_index, body_sealed) on mail_outbox to {{runtime_role}};
create function palisade_admin.mail_outbox_forget_only() returns trigger
language plpgsql set search_path = pg_catalog as $$
begin
  -- (A null recipient is a message queued before this migration, which its keyed step seals.)
  if old.to_sealed is not null
     and (new.to_sealed, new.to_index, new.body_sealed) is distinct from (old.to_sealed, old.to_index, old.body_sealed)
     and (new.status not in ('sent', 'failed') or new.to_sealed <> '' or new.to_index <> '' or new.body_sealed <> '') then
    raise exception 'a queued mail''s recipient and body only go, once it is sent or failed' using errcode = 'insufficient_privilege';
  end if;
  return new;
end $$;
revoke all on function palisade_admin.mail_outbox_forget_only() from public;
create trigger mail_outbox_forget_only before update on mail_outbox for each row execute function palisade_admin.mail_outbox_forget_only();
