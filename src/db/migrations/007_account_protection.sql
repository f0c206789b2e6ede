-- Account protection (issue #4): lockout, second factors, step-up, org MFA policy, admin IP
-- allowlist.

-- Lockout lives with the account, so that every server instance counts the same attempts:
-- an attempt reserves its slot before the password is checked (identity/lockout.ts).
alter table users
  add column failed_logins integer not null default 0,
  add column locked_until timestamptz,
  add column mfa_enabled boolean not null default false;

-- A user's factors are global, like the user: one account, every org.
create table totp_credentials (
  user_id uuid primary key references users (id) on delete cascade,
  -- Sealed by the keyring (scope 'mfa'): the secret is what a code is derived from.
  secret_sealed text not null,
  confirmed_at timestamptz,
  -- The highest time step accepted so far: a code (or an older one) is never accepted twice.
  last_step bigint not null default 0,
  created_at timestamptz not null
);

create table recovery_codes (
  user_id uuid not null references users (id) on delete cascade,
  code_hash text not null,
  created_at timestamptz not null,
  used_at timestamptz,
  primary key (user_id, code_hash)
);

-- The state between the password step and the second factor: not a session, single-use,
-- short-lived, and tied to the session epoch the password was checked under.
create table mfa_challenges (
  token_hash text primary key,
  user_id uuid not null references users (id) on delete cascade,
  session_epoch integer not null,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  used_at timestamptz
);
create index mfa_challenges_user_idx on mfa_challenges (user_id);

-- mfa_verified: the session was established (or later confirmed) with a second factor.
-- stepped_up_at: the last fresh proof for sensitive actions (a second factor; a password only
-- for an account without one).
alter table sessions
  add column mfa_verified boolean not null default false,
  add column stepped_up_at timestamptz;

-- mfa_enforced_from: members without a second factor lose org access from this instant
-- (requirement time + grace period); null when the org does not require MFA.
alter table org_settings
  add column mfa_enforced_from timestamptz,
  add column admin_ip_allowlist text[] not null default '{}';

grant select, insert, update, delete on totp_credentials, recovery_codes, mfa_challenges to {{runtime_role}};

-- Authentication now also reads the org's MFA and IP policy and the session's factor state.
drop function palisade_session_in_org(text, uuid);
drop function palisade_membership(uuid, uuid);

create function palisade_membership(p_org uuid, p_user uuid)
returns table (role text, custom_role_id uuid, restricted boolean, sessions_revoked_at timestamptz,
               custom_name text, custom_permissions text[], session_idle_seconds integer,
               session_absolute_seconds integer, project_ids text[], mfa_enforced_from timestamptz,
               admin_ip_allowlist text[])
language plpgsql stable security invoker as $$
begin
  return query
  select m.role, m.custom_role_id, m.restricted, m.sessions_revoked_at, cr.name, cr.permissions,
         os.session_idle_seconds, os.session_absolute_seconds,
         case when m.restricted then coalesce(
           (select array_agg(pa.project_id::text order by pa.project_id) from project_access pa
            where pa.org_id = m.org_id and pa.user_id = m.user_id),
           '{}') end,
         os.mfa_enforced_from, coalesce(os.admin_ip_allowlist, '{}')
  from memberships m
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
               admin_ip_allowlist text[], bound_user_id text, bound_project_ids text)
language plpgsql volatile security invoker as $$
begin
  return query
  select s.id, s.user_id, u.email, s.created_at, s.last_seen_at, s.absolute_expires_at, s.revoked_at,
         s.rotate_pending, s.longest_idle_seconds, s.ip, s.user_agent, s.epoch, u.session_epoch,
         u.mfa_enabled, s.mfa_verified, s.stepped_up_at,
         mem.role, mem.custom_role_id, mem.restricted, mem.sessions_revoked_at, mem.custom_name,
         mem.custom_permissions, mem.session_idle_seconds, mem.session_absolute_seconds, mem.project_ids,
         mem.mfa_enforced_from, mem.admin_ip_allowlist,
         set_config('palisade.user_id', s.user_id::text, true),
         set_config('palisade.project_ids', case when mem.role is null then ''
           when mem.project_ids is null then '*' else array_to_string(mem.project_ids, ',') end, true)
  from sessions s
  join users u on u.id = s.user_id
  left join lateral palisade_membership(p_org, s.user_id) mem on true
  where s.token_hash = p_token_hash;
end $$;
