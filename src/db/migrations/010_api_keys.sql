-- API keys (issue #5). A key identifies an actor; what it may do is derived at every use:
-- its scopes, intersected with its creator's current permissions in the org.

create table api_keys (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  -- SHA-256 of the whole token (pal_sk_/pal_pk_ + 178 random bits + checksum): the token is
  -- never stored, and a high-entropy secret needs no slow hash.
  token_hash text not null unique,
  kind text not null check (kind in ('secret', 'publishable')),
  name text not null,
  prefix text not null,
  last_four text not null,
  permissions text[] not null,
  project_id uuid,
  created_by uuid not null,
  -- The creator's membership as it was when the key was made (memberships.created_at): a
  -- member removed and invited back does not get their old keys back.
  creator_joined_at timestamptz not null,
  created_at timestamptz not null,
  expires_at timestamptz,
  revoked_at timestamptz,
  revoked_by uuid,
  last_used_at timestamptz,
  primary key (org_id, id),
  foreign key (org_id, project_id) references projects (org_id, id) on delete cascade
);
create index api_keys_creator_idx on api_keys (org_id, created_by);
select palisade_admin.tenant_table('api_keys');

-- Origins (scheme://host[:port]) whose pages may call the API with the org's publishable keys.
alter table org_settings add column browser_origins text[] not null default '{}';

grant select, insert, update on api_keys to {{runtime_role}};

-- A key's standing in the org of the URL, read by one statement per request (like
-- palisade_session_in_org): the key, its creator's current membership, the org's policies, and
-- the binding for the handler's queries. A key answers to the org's MFA requirement through its
-- creator: while the creator lacks the second factor the org requires, the key is refused too
-- (api-keys/service.ts). The key's project scope is its own project, if any,
-- within the creator's current scope; a revoked key or a departed creator binds nothing.
create function palisade_key_in_org(p_token_hash text, p_org uuid)
returns table (id uuid, kind text, name text, permissions text[], project_id uuid, created_by uuid,
               expires_at timestamptz, revoked_at timestamptz, last_used_at timestamptz,
               role text, custom_name text, custom_permissions text[], restricted boolean,
               project_ids text[], admin_ip_allowlist text[], browser_origins text[],
               mfa_enforced_from timestamptz, creator_mfa_enabled boolean,
               bound_user_id text, bound_project_ids text)
language plpgsql volatile security invoker set search_path = public, pg_temp as $$
begin
  return query
  select k.id, k.kind, k.name, k.permissions, k.project_id, k.created_by, k.expires_at, k.revoked_at,
         k.last_used_at, mem.role, mem.custom_name, mem.custom_permissions, mem.restricted,
         mem.project_ids, mem.admin_ip_allowlist, coalesce(os.browser_origins, '{}'),
         mem.mfa_enforced_from, u.mfa_enabled,
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
  left join users u on u.id = k.created_by
  where k.token_hash = p_token_hash and k.org_id = p_org;
end $$;
