-- The read path, measured (docs/performance.md): PostgreSQL's CPU, not Node's, bounded a
-- signed-in read. Two causes, two fixes.

-- 1. The project-scope policies called current_setting() and parsed the list on every row a
-- query visited (2,000 rows for a 20-row page). As scalar subqueries they become InitPlans:
-- evaluated once per query, the per-row check is a comparison with a parameter.
alter policy project_scope on projects
  using ((select coalesce(current_setting('palisade.project_ids', true), '') = '*')
         or id = any ((select string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ','))::uuid[]))
  with check ((select coalesce(current_setting('palisade.project_ids', true), '') = '*')
         or id = any ((select string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ','))::uuid[]));
alter policy project_scope on assets
  using ((select coalesce(current_setting('palisade.project_ids', true), '') = '*')
         or project_id = any ((select string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ','))::uuid[]))
  with check ((select coalesce(current_setting('palisade.project_ids', true), '') = '*')
         or project_id = any ((select string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ','))::uuid[]));
alter policy project_scope on project_access
  using ((select coalesce(current_setting('palisade.project_ids', true), '') = '*')
         or project_id = any ((select string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ','))::uuid[]))
  with check ((select coalesce(current_setting('palisade.project_ids', true), '') = '*')
         or project_id = any ((select string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ','))::uuid[]));

-- 2. Authentication's statement (session, user, membership, role, settings, assignments under
-- five tables' policies) took ~0.9 ms to plan and ~0.1 ms to run, planned anew on every
-- request. Inside PL/pgSQL functions the plans are cached per connection. Both functions are
-- SECURITY INVOKER: they run as the caller, under the caller's binding and RLS.

-- A member's standing in an org (tenancy/access.ts reads it; null row when not a member).
create function palisade_membership(p_org uuid, p_user uuid)
returns table (role text, custom_role_id uuid, restricted boolean, sessions_revoked_at timestamptz,
               custom_name text, custom_permissions text[], session_idle_seconds integer,
               session_absolute_seconds integer, project_ids text[])
language plpgsql stable security invoker as $$
begin
  return query
  select m.role, m.custom_role_id, m.restricted, m.sessions_revoked_at, cr.name, cr.permissions,
         os.session_idle_seconds, os.session_absolute_seconds,
         case when m.restricted then coalesce(
           (select array_agg(pa.project_id::text order by pa.project_id) from project_access pa
            where pa.org_id = m.org_id and pa.user_id = m.user_id),
           '{}') end
  from memberships m
  left join custom_roles cr on cr.org_id = m.org_id and cr.id = m.custom_role_id
  left join org_settings os on os.org_id = m.org_id
  where m.org_id = p_org and m.user_id = p_user;
end $$;

-- The session a token hash names, its user, and the user's standing in p_org; it binds the
-- rest of the transaction to that user and their project scope (sessions/service.ts checks
-- revocation, epochs and expiry on the row, and the binding is returned so the caller knows
-- what it set). Requires p_org bound already (memberships are behind RLS).
create function palisade_session_in_org(p_token_hash text, p_org uuid)
returns table (id uuid, user_id uuid, email text, created_at timestamptz, last_seen_at timestamptz,
               absolute_expires_at timestamptz, revoked_at timestamptz, rotate_pending boolean,
               longest_idle_seconds integer, ip text, user_agent text, epoch integer, user_epoch integer,
               role text, custom_role_id uuid, restricted boolean, sessions_revoked_at timestamptz,
               custom_name text, custom_permissions text[], session_idle_seconds integer,
               session_absolute_seconds integer, project_ids text[],
               bound_user_id text, bound_project_ids text)
language plpgsql volatile security invoker as $$
begin
  return query
  select s.id, s.user_id, u.email, s.created_at, s.last_seen_at, s.absolute_expires_at, s.revoked_at,
         s.rotate_pending, s.longest_idle_seconds, s.ip, s.user_agent, s.epoch, u.session_epoch,
         mem.role, mem.custom_role_id, mem.restricted, mem.sessions_revoked_at, mem.custom_name,
         mem.custom_permissions, mem.session_idle_seconds, mem.session_absolute_seconds, mem.project_ids,
         set_config('palisade.user_id', s.user_id::text, true),
         set_config('palisade.project_ids', case when mem.role is null then ''
           when mem.project_ids is null then '*' else array_to_string(mem.project_ids, ',') end, true)
  from sessions s
  join users u on u.id = s.user_id
  left join lateral palisade_membership(p_org, s.user_id) mem on true
  where s.token_hash = p_token_hash;
end $$;
