-- Authentication results are cached in each server process (src/db/auth-cache.ts, issue 15). What
-- makes that safe is here: every table that the authentication statements read
-- (palisade_session_in_org, palisade_key_in_org, palisade_membership) announces its changes on the
-- channel palisade_auth, from the changing transaction itself, so that no code path (a route, the
-- worker, a CLI, an operator's psql) can change who may do what without every cache hearing it.
-- PostgreSQL delivers a NOTIFY when its transaction commits, and nothing of a rolled-back one.
--
-- The payload names what changed, never a secret: s:<session id>, u:<user id>, k:<key id>,
-- m:<org id>:<user id> (one membership and its project assignments), o:<org id> (the org, its
-- settings, its custom roles). A connection that set palisade.auth_notice (the server's own pool)
-- also gets a NOTICE with the same tag while the statement runs: the process that makes a change
-- drops its cached result before its own COMMIT returns, so that a revocation is immediate where
-- it was made, not only after its NOTIFY comes back.

create function palisade_admin.auth_changed_row() returns trigger
language plpgsql set search_path = pg_catalog as $$
declare
  tags text[] := '{}';
  tag text;
begin
  -- OLD and NEW both: a row whose keys changed would otherwise leave the old tag's results cached.
  -- One branch per table: a record's fields are resolved when a statement runs.
  if tg_table_name = 'sessions' then
    if tg_op <> 'INSERT' then tags := tags || ('s:' || old.id); end if;
    if tg_op = 'UPDATE' then tags := tags || ('s:' || new.id); end if;
  elsif tg_table_name = 'users' then
    if tg_op <> 'INSERT' then tags := tags || ('u:' || old.id); end if;
    if tg_op = 'UPDATE' then tags := tags || ('u:' || new.id); end if;
  elsif tg_table_name = 'api_keys' then
    if tg_op <> 'INSERT' then tags := tags || ('k:' || old.id); end if;
    if tg_op = 'UPDATE' then tags := tags || ('k:' || new.id); end if;
  elsif tg_table_name in ('memberships', 'project_access') then
    if tg_op <> 'INSERT' then tags := tags || ('m:' || old.org_id || ':' || old.user_id); end if;
    if tg_op <> 'DELETE' then tags := tags || ('m:' || new.org_id || ':' || new.user_id); end if;
  else
    if tg_op <> 'INSERT' then tags := tags || ('o:' || old.org_id); end if;
    if tg_op <> 'DELETE' then tags := tags || ('o:' || new.org_id); end if;
  end if;
  foreach tag in array tags loop
    -- Identical payloads of one transaction are sent once.
    perform pg_notify('palisade_auth', tag);
    if current_setting('palisade.auth_notice', true) = 'on' then
      raise notice 'palisade_auth %', tag;
    end if;
  end loop;
  return null;
end $$;
revoke all on function palisade_admin.auth_changed_row() from public;

-- A new session or key has no cached result to drop: only updates and deletes of those.
create trigger auth_changed after update or delete on sessions
  for each row execute function palisade_admin.auth_changed_row();
-- Failed sign-in counters and profile edits change nothing authentication reads.
create trigger auth_changed after update on users
  for each row when (old.session_epoch is distinct from new.session_epoch or old.mfa_enabled is distinct from new.mfa_enabled)
  execute function palisade_admin.auth_changed_row();
create trigger auth_changed_delete after delete on users
  for each row execute function palisade_admin.auth_changed_row();
-- last_used_at is written by the key's own use (at most once a minute): it decides nothing.
create trigger auth_changed after update on api_keys
  for each row when ((to_jsonb(old) - 'last_used_at') is distinct from (to_jsonb(new) - 'last_used_at'))
  execute function palisade_admin.auth_changed_row();
create trigger auth_changed_delete after delete on api_keys
  for each row execute function palisade_admin.auth_changed_row();
-- A membership or project assignment that appears matters too: "not a member" is cached as well.
create trigger auth_changed after insert or update or delete on memberships
  for each row execute function palisade_admin.auth_changed_row();
create trigger auth_changed after insert or update or delete on project_access
  for each row execute function palisade_admin.auth_changed_row();
create trigger auth_changed after insert or update or delete on custom_roles
  for each row execute function palisade_admin.auth_changed_row();
create trigger auth_changed after insert or update or delete on org_settings
  for each row execute function palisade_admin.auth_changed_row();
create trigger auth_changed after update or delete on organizations
  for each row execute function palisade_admin.auth_changed_row();
