-- Core schema. Conventions (checked by the catalog test and at server start):
--  * every tenant table has org_id and goes through palisade_tenant_table(), which enables and
--    FORCES row-level security and adds the one tenant policy with USING and WITH CHECK;
--  * the runtime role gets only the privileges listed at the end of each migration.

create schema if not exists palisade_admin;
revoke all on schema palisade_admin from public;

-- Applies the tenant policy. Lives in a schema the runtime role cannot use.
create or replace function palisade_admin.tenant_table(tbl regclass) returns void
language plpgsql as $$
begin
  execute format('alter table %s enable row level security', tbl);
  execute format('alter table %s force row level security', tbl);
  execute format(
    'create policy tenant_isolation on %s as permissive for all
       using (org_id = nullif(current_setting(''palisade.org_id'', true), '''')::uuid)
       with check (org_id = nullif(current_setting(''palisade.org_id'', true), '''')::uuid)', tbl);
end $$;
revoke all on function palisade_admin.tenant_table(regclass) from public;

-- Global identity -------------------------------------------------------------------------

create table users (
  id uuid primary key,
  email text not null,
  name text not null default '',
  password_hash text,
  password_changed_at timestamptz,
  created_at timestamptz not null default now()
);
create unique index users_email_key on users (lower(email));

create table sessions (
  id uuid primary key,
  token_hash text not null unique,
  user_id uuid not null references users (id) on delete cascade,
  created_at timestamptz not null,
  last_seen_at timestamptz not null,
  absolute_expires_at timestamptz not null,
  rotate_pending boolean not null default false,
  ip text not null default '',
  user_agent text not null default '',
  revoked_at timestamptz,
  revoked_reason text
);
create index sessions_user_idx on sessions (user_id) where revoked_at is null;

create table password_resets (
  token_hash text primary key,
  user_id uuid not null references users (id) on delete cascade,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  used_at timestamptz
);
create index password_resets_user_idx on password_resets (user_id);

-- Wrapped data keys of non-tenant scopes (the mail outbox).
create table system_keys (
  id uuid primary key,
  scope text not null,
  kek_id text not null,
  wrapped text not null,
  active boolean not null default true,
  created_at timestamptz not null default now()
);
create unique index system_keys_active on system_keys (scope) where active;

-- The development/test mail port: message bodies may carry tokens, so they are sealed.
create table mail_outbox (
  id uuid primary key,
  to_address text not null,
  subject text not null,
  body_sealed text not null,
  created_at timestamptz not null default now()
);

-- Tenant data ----------------------------------------------------------------------------

create table organizations (
  org_id uuid primary key,
  slug text not null unique check (slug ~ '^[a-z0-9][a-z0-9-]{1,38}[a-z0-9]$'),
  name text not null,
  created_at timestamptz not null default now()
);
select palisade_admin.tenant_table('organizations');

create table org_settings (
  org_id uuid primary key references organizations (org_id) on delete cascade,
  session_idle_seconds integer check (session_idle_seconds between 60 and 86400),
  session_absolute_seconds integer check (session_absolute_seconds between 300 and 2592000),
  updated_at timestamptz not null default now()
);
select palisade_admin.tenant_table('org_settings');

create table org_keys (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  kek_id text not null,
  wrapped text not null,
  active boolean not null default true,
  created_at timestamptz not null default now(),
  primary key (org_id, id)
);
create unique index org_keys_active on org_keys (org_id) where active;
select palisade_admin.tenant_table('org_keys');

create table custom_roles (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  name text not null,
  description text not null default '',
  permissions text[] not null,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  primary key (org_id, id),
  unique (org_id, name)
);
select palisade_admin.tenant_table('custom_roles');

create table memberships (
  org_id uuid not null references organizations (org_id) on delete cascade,
  user_id uuid not null references users (id) on delete cascade,
  role text not null check (role in ('owner', 'admin', 'member', 'viewer', 'project_viewer', 'custom')),
  custom_role_id uuid,
  restricted boolean not null default false,
  created_at timestamptz not null default now(),
  primary key (org_id, user_id),
  foreign key (org_id, custom_role_id) references custom_roles (org_id, id),
  check ((role = 'custom') = (custom_role_id is not null)),
  check (role <> 'project_viewer' or restricted)
);
create index memberships_user_idx on memberships (user_id);
select palisade_admin.tenant_table('memberships');
-- A user may see their own memberships in every org (to list "my organizations"); nothing else.
create policy own_memberships on memberships for select
  using (user_id = nullif(current_setting('palisade.user_id', true), '')::uuid);
create policy member_orgs on organizations for select
  using (org_id in (select m.org_id from memberships m
                    where m.user_id = nullif(current_setting('palisade.user_id', true), '')::uuid));

create table projects (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  name text not null,
  created_at timestamptz not null default now(),
  primary key (org_id, id)
);
select palisade_admin.tenant_table('projects');

create table project_access (
  org_id uuid not null,
  project_id uuid not null,
  user_id uuid not null,
  created_at timestamptz not null default now(),
  primary key (org_id, project_id, user_id),
  foreign key (org_id, project_id) references projects (org_id, id) on delete cascade,
  foreign key (org_id, user_id) references memberships (org_id, user_id) on delete cascade
);
create index project_access_user_idx on project_access (org_id, user_id);
select palisade_admin.tenant_table('project_access');

create table assets (
  org_id uuid not null,
  project_id uuid not null,
  id uuid not null,
  name text not null,
  kind text not null,
  created_at timestamptz not null default now(),
  primary key (org_id, id),
  foreign key (org_id, project_id) references projects (org_id, id) on delete cascade
);
create index assets_project_idx on assets (org_id, project_id, created_at desc);
select palisade_admin.tenant_table('assets');

-- Project scope: the third layer for restricted members. '*' means every project of the org;
-- otherwise a comma-separated list of project ids; unset or empty means none.
create policy project_scope on projects as restrictive for all
  using (coalesce(current_setting('palisade.project_ids', true), '') = '*'
         or id = any (string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ',')::uuid[]))
  with check (coalesce(current_setting('palisade.project_ids', true), '') = '*');
create policy project_scope on assets as restrictive for all
  using (coalesce(current_setting('palisade.project_ids', true), '') = '*'
         or project_id = any (string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ',')::uuid[]))
  with check (coalesce(current_setting('palisade.project_ids', true), '') = '*'
         or project_id = any (string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ',')::uuid[]));

create table invitations (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  email text not null,
  role text not null check (role in ('owner', 'admin', 'member', 'viewer', 'project_viewer', 'custom')),
  custom_role_id uuid,
  restricted boolean not null default false,
  project_ids uuid[] not null default '{}',
  token_hash text not null unique,
  invited_by uuid not null,
  created_at timestamptz not null default now(),
  expires_at timestamptz not null,
  accepted_at timestamptz,
  accepted_by uuid,
  revoked_at timestamptz,
  primary key (org_id, id),
  foreign key (org_id, custom_role_id) references custom_roles (org_id, id) on delete cascade
);
select palisade_admin.tenant_table('invitations');

-- Audit trail: append-only, hash-chained per org. The nil UUID is the chain of events that
-- belong to no org (registration, failed logins, probes of other tenants).
create table audit_events (
  org_id uuid not null,
  seq bigint not null,
  id uuid not null unique,
  at timestamptz not null,
  actor_type text not null,
  actor_id text,
  actor_role text,
  action text not null,
  target_type text,
  target_id text,
  result text not null check (result in ('success', 'denied', 'failure')),
  ip text not null default '',
  user_agent text not null default '',
  request_id text not null default '',
  details jsonb not null default '{}',
  prev_hash text not null,
  hash text not null,
  primary key (org_id, seq)
);
create index audit_events_at_idx on audit_events (org_id, at desc);
select palisade_admin.tenant_table('audit_events');

create table audit_heads (
  org_id uuid primary key,
  seq bigint not null,
  hash text not null
);
select palisade_admin.tenant_table('audit_heads');

create function palisade_admin.audit_is_append_only() returns trigger
language plpgsql as $$
begin
  raise exception 'audit_events is append-only' using errcode = 'insufficient_privilege';
end $$;
revoke all on function palisade_admin.audit_is_append_only() from public;
create trigger audit_events_append_only before update or delete or truncate on audit_events
  for each statement execute function palisade_admin.audit_is_append_only();

-- Runtime role privileges ------------------------------------------------------------------
grant usage on schema public to {{runtime_role}};
grant select, insert, update, delete on users, sessions, password_resets, system_keys, mail_outbox,
  organizations, org_settings, org_keys, custom_roles, memberships, projects, project_access, assets,
  invitations to {{runtime_role}};
grant select, insert on audit_events to {{runtime_role}};
grant select, insert, update on audit_heads to {{runtime_role}};
