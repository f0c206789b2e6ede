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
-- left anywhere (which RLS would hide from the caller, hence security definer), it deletes the
-- account (sessions, factors, passkeys, resets, links and identities follow by their foreign
-- keys) and the mail queued to its address. The users row is locked before the count: a
-- membership added meanwhile waits on it and then fails, instead of outliving the account.
create function palisade_erase_member(p_org uuid, p_user uuid) returns text
language plpgsql security definer set search_path = pg_catalog as $$
declare
  bound uuid := nullif(current_setting('palisade.org_id', true), '')::uuid;
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
  if exists (select 1 from public.memberships where user_id = p_user) then
    return 'kept';
  end if;
  delete from public.mail_outbox where lower(to_address) = lower(address);
  delete from public.users where id = p_user;
  return 'deleted';
end $$;
revoke all on function palisade_erase_member(uuid, uuid) from public;
grant execute on function palisade_erase_member(uuid, uuid) to {{runtime_role}};
