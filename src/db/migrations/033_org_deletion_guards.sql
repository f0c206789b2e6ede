-- Review of org deletion (issue 14).
-- 1. The membership guard refused SSO sign-in for existing members: provisioning inserts with
--    `on conflict do nothing`, and a BEFORE INSERT trigger fires before the conflict is found.
--    An existing membership is now let through (the insert then does nothing).
-- 2. A request authorized before the deletion committed could still insert a membership or an
--    API key after it: the guards now take a share lock on the org row, so they wait for a
--    deletion in flight (which holds it FOR UPDATE) and see its outcome.
-- 3. A shredded org gets no new data key: a seal for it (another instance's stale cache, a bug)
--    would otherwise create one and store data no deletion covered.
create or replace function palisade_admin.memberships_org_live() returns trigger
language plpgsql set search_path = pg_catalog, public as $$
begin
  if exists (select 1 from memberships m where m.org_id = new.org_id and m.user_id = new.user_id) then
    return new;
  end if;
  perform 1 from organizations o where o.org_id = new.org_id for share;
  if exists (select 1 from organizations o where o.org_id = new.org_id and (o.purge_after is not null or o.shredded_at is not null)) then
    raise exception 'the organization is scheduled for deletion' using errcode = '55000';
  end if;
  return new;
end $$;

create or replace function palisade_admin.api_keys_org_live() returns trigger
language plpgsql set search_path = pg_catalog, public as $$
begin
  perform 1 from organizations o where o.org_id = new.org_id for share;
  if exists (select 1 from organizations o where o.org_id = new.org_id and (o.purge_after is not null or o.shredded_at is not null)) then
    raise exception 'the organization is scheduled for deletion' using errcode = '55000';
  end if;
  return new;
end $$;
revoke all on function palisade_admin.api_keys_org_live() from public;
create trigger api_keys_org_live before insert on api_keys for each row execute function palisade_admin.api_keys_org_live();

create or replace function palisade_admin.org_keys_org_live() returns trigger
language plpgsql set search_path = pg_catalog, public as $$
begin
  if exists (select 1 from organizations o where o.org_id = new.org_id and o.shredded_at is not null) then
    raise exception 'the organization was shredded: it gets no new data key' using errcode = '55000';
  end if;
  return new;
end $$;
revoke all on function palisade_admin.org_keys_org_live() from public;
create trigger org_keys_org_live before insert on org_keys for each row execute function palisade_admin.org_keys_org_live();
