-- Org deletion with a grace period, then crypto-shredding (issue 14). An owner schedules the
-- deletion; until purge_after the org answers only its own status and the owner's restore, and
-- afterwards the data-key job destroys every data key of the org (its sealed values can then be
-- opened by no key that remains) and removes what gives anyone access to it.

-- On the org row, which its members read with no org bound (their list of orgs shows it), and
-- which authentication joins: the pipeline learns that an org is being deleted in the statement
-- it runs anyway. shredded_at marks the tombstone: the row stays (the audit chain is kept, and so
-- is the slug, which nobody can then claim to impersonate the org it named).
alter table organizations
  add column deletion_requested_at timestamptz,
  add column deletion_requested_by uuid,
  add column purge_after timestamptz,
  add column shredded_at timestamptz,
  add constraint organizations_deletion check ((deletion_requested_at is null) = (purge_after is null));

-- The membership now says when the org is to be purged (null: not being deleted).
drop function palisade_session_in_org(text, uuid);
drop function palisade_key_in_org(text, uuid);
drop function palisade_membership(uuid, uuid);

create function palisade_membership(p_org uuid, p_user uuid)
returns table (role text, custom_role_id uuid, restricted boolean, sessions_revoked_at timestamptz,
               custom_name text, custom_permissions text[], session_idle_seconds integer,
               session_absolute_seconds integer, project_ids text[], mfa_enforced_from timestamptz,
               admin_ip_allowlist text[], purge_after timestamptz)
language plpgsql stable security invoker set search_path = public, pg_temp as $$
begin
  return query
  select m.role, m.custom_role_id, m.restricted, m.sessions_revoked_at, cr.name, cr.permissions,
         os.session_idle_seconds, os.session_absolute_seconds,
         case when m.restricted then coalesce(
           (select array_agg(pa.project_id::text order by pa.project_id) from project_access pa
            where pa.org_id = m.org_id and pa.user_id = m.user_id),
           '{}') end,
         os.mfa_enforced_from, coalesce(os.admin_ip_allowlist, '{}'), o.purge_after
  from memberships m
  join organizations o on o.org_id = m.org_id
  left join custom_roles cr on cr.org_id = m.org_id and cr.id = m.custom_role_id
  left join org_settings os on os.org_id = m.org_id
  where m.org_id = p_org and m.user_id = p_user;
end $$;

create function palisade_session_in_org(p_token_hash text, p_org uuid)
returns table (id uuid, user_id uuid, email text, created_at timestamptz, last_seen_at timestamptz,
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
  select s.id, s.user_id, u.email, s.created_at, s.last_seen_at, s.absolute_expires_at, s.revoked_at,
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

create function palisade_key_in_org(p_token_hash text, p_org uuid)
returns table (id uuid, kind text, name text, permissions text[], project_id uuid, created_by uuid,
               expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz,
               role text, custom_name text, custom_permissions text[], restricted boolean,
               project_ids text[], admin_ip_allowlist text[], browser_origins text[],
               mfa_enforced_from timestamptz, creator_mfa_enabled boolean, purge_after timestamptz,
               bound_user_id text, bound_project_ids text)
language plpgsql volatile security invoker set search_path = public, pg_temp as $$
begin
  return query
  select k.id, k.kind, k.name, k.permissions, k.project_id, k.created_by, k.expires_at, k.revoked_at,
         k.last_used_at, mem.role, mem.custom_name, mem.custom_permissions, mem.restricted,
         mem.project_ids, mem.admin_ip_allowlist, coalesce(os.browser_origins, '{}'),
         mem.mfa_enforced_from, u.mfa_enabled, o.purge_after,
         set_config('palisade.user_id', '', true),
         set_config('palisade.project_ids', case
           when mem.role is null or k.revoked_at is not null then ''
           when k.project_id is null then
             case when mem.project_ids is null then '*' else array_to_string(mem.project_ids, ',') end
           when mem.project_ids is null or k.project_id::text = any (mem.project_ids) then k.project_id::text
           else '' end, true)
  from api_keys k
  left join memberships m on m.org_id = k.org_id and m.user_id = k.created_by and m.created_at = k.creator_joined_at
  left join lateral palisade_membership(p_org, k.created_by) mem on m.user_id is not null
  left join org_settings os on os.org_id = k.org_id
  left join organizations o on o.org_id = k.org_id
  left join users u on u.id = k.created_by
  where k.token_hash = p_token_hash and k.org_id = p_org;
end $$;

-- Nobody joins an org that is being deleted or was shredded: whatever the path (an invitation
-- accepted during the grace period, SSO just-in-time provisioning, group mapping), the insert is
-- refused here, as a conflict (SQLSTATE 55000, http/problem.ts).
create or replace function palisade_admin.memberships_org_live() returns trigger
language plpgsql set search_path = pg_catalog, public as $$
begin
  if exists (select 1 from organizations o where o.org_id = new.org_id and (o.purge_after is not null or o.shredded_at is not null)) then
    raise exception 'the organization is scheduled for deletion' using errcode = '55000';
  end if;
  return new;
end $$;
revoke all on function palisade_admin.memberships_org_live() from public;
create trigger memberships_org_live before insert on memberships for each row execute function palisade_admin.memberships_org_live();
