-- Data-subject erasure (issue 14, tenancy/subject.ts).
--
-- Erasing a member removes the links of their SSO identities to the org, which nothing deleted
-- before (an identity stayed linked when its member was removed, so that a returning member kept
-- their account). RLS still confines the delete to the org bound in the transaction.
grant delete on sso_identities to {{runtime_role}};

-- The runtime role deletes no user and no mail (014): a role that could would erase a user's
-- history from the operator's view. An erasure must, when the person belongs to no other org:
-- this function is the one way, and it does only that. With the org bound in the transaction
-- (the request's own), it removes the member from that org; if no membership of the person is
-- left anywhere (the runtime role may not delete users, hence security definer), it deletes the
-- account (sessions, factors, passkeys, resets, links and identities follow by their foreign
-- keys) and the mail queued to its address. The users row is locked before the count: a
-- membership added meanwhile waits on it and then fails, instead of outliving the account.
create function palisade_erase_member(p_org uuid, p_user uuid) returns text
language plpgsql security definer set search_path = pg_catalog as $$
declare
  bound uuid := nullif(current_setting('palisade.org_id', true), '')::uuid;
  caller text := current_setting('palisade.user_id', true);
  elsewhere boolean;
  address text;
begin
  if bound is null or bound <> p_org then
    raise exception 'palisade_erase_member needs its org bound in the transaction' using errcode = 'insufficient_privilege';
  end if;
  select u.email into address from public.users u where u.id = p_user for update;
  delete from public.memberships where org_id = p_org and user_id = p_user;
  if not found then
    raise exception 'not a member of the org' using errcode = 'no_data_found';
  end if;
  -- The person's memberships in every org: through own_memberships (001), the person bound for
  -- this one read, so the count is right whether or not this function's owner bypasses RLS (a
  -- managed database's migrator usually does not, and memberships forces RLS on its owner).
  perform set_config('palisade.user_id', p_user::text, true);
  select exists (select 1 from public.memberships where user_id = p_user) into elsewhere;
  perform set_config('palisade.user_id', coalesce(caller, ''), true);
  if elsewhere then
    return 'kept';
  end if;
  delete from public.mail_outbox where lower(to_address) = lower(address);
  delete from public.users where id = p_user;
  return 'deleted';
end $$;
revoke all on function palisade_erase_member(uuid, uuid) from public;
grant execute on function palisade_erase_member(uuid, uuid) to {{runtime_role}};

-- An audit event's sealed personal part is outside the chain (a data-key rotation re-seals it),
-- so the trigger of 034 cannot tell an erasure from a tampering: both null a part. What tells
-- them apart is the chain: an erasure appends a clear event naming every event it erased, and
-- `palisade audit verify` reports any event whose part is gone that no erasure names (review of
-- 034, finding 1). A part is removed by setting it null, never emptied, so that there is one form.
create or replace function palisade_admin.audit_personal_only() returns trigger
language plpgsql set search_path = pg_catalog as $$
begin
  if (new.org_id, new.seq, new.id, new.at, new.actor_type, new.actor_id, new.actor_role, new.action, new.target_type, new.target_id,
      new.result, new.ip, new.user_agent, new.request_id, new.details, new.key_id, new.prev_hash, new.hash)
     is distinct from
     (old.org_id, old.seq, old.id, old.at, old.actor_type, old.actor_id, old.actor_role, old.action, old.target_type, old.target_id,
      old.result, old.ip, old.user_agent, old.request_id, old.details, old.key_id, old.prev_hash, old.hash) then
    raise exception 'audit_events is append-only' using errcode = 'insufficient_privilege';
  end if;
  if old.personal_sealed is null and new.personal_sealed is not null then
    raise exception 'an audit event without a sealed part gets none' using errcode = 'insufficient_privilege';
  end if;
  if new.personal_sealed = '' then
    raise exception 'a sealed part is removed by setting it null' using errcode = 'check_violation';
  end if;
  return new;
end $$;

-- A data-key rotation walks an org's sealed values by id; without this index the walk over
-- audit_events used the global id index and filtered every other org's rows out (review of 034,
-- finding 3: 58 ms a batch for an org of 20k events among 1M).
create index audit_events_org_id_idx on audit_events (org_id, id);
