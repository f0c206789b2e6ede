-- Integration credentials (issue 14): third-party secrets the host app needs per org (a PSA's API
-- token, an OAuth client secret, an RMM password). Write-only through the API: the value is sealed
-- with the org's data key and opened only in process, by code that names the credential
-- (src/domains/credentials/vault.ts). Every use is counted here and audited; the rotation history
-- and the per-use log keep when, who and why, never the value.

create table integration_credentials (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  -- What host code asks for: a closed charset so that a name is never markup, a path or a log
  -- injection, and one spelling per credential (the service lower-cases nothing: it refuses).
  name text not null check (name ~ '^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$'),
  kind text not null check (kind in ('api_token', 'oauth_client_secret', 'password', 'other')),
  description text not null default '' check (length(description) <= 200),
  -- The value, sealed with the org's data key (AAD: org, table, column, row). Emptied when the
  -- credential is deleted: a deleted credential keeps no secret.
  secret_sealed text not null,
  -- 1 at creation, +1 per replacement: the rotation history's key.
  version integer not null default 1 check (version >= 1),
  created_by uuid not null,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  last_used_at timestamptz,
  last_used_by text check (last_used_by ~ '^[a-z0-9]([a-z0-9._:-]{0,62}[a-z0-9])?$'),
  use_count bigint not null default 0 check (use_count >= 0),
  -- Deleted credentials stay (without their value) so that the audit trail's targets, the
  -- rotation history and the use log keep their meaning; the name is free again.
  deleted_at timestamptz,
  primary key (org_id, id)
);
create unique index integration_credentials_name_idx on integration_credentials (org_id, name) where deleted_at is null;
select palisade_admin.tenant_table('integration_credentials');

-- Who created or replaced the value, when and why. Append-only.
create table integration_credential_rotations (
  org_id uuid not null,
  credential_id uuid not null,
  version integer not null check (version >= 1),
  event text not null check (event in ('created', 'replaced')),
  at timestamptz not null,
  by_user uuid not null,
  reason text not null default '' check (length(reason) <= 200),
  primary key (org_id, credential_id, version),
  foreign key (org_id, credential_id) references integration_credentials (org_id, id) on delete cascade
);
select palisade_admin.tenant_table('integration_credential_rotations');

-- What each use came to, as the host reported it: a closed status and a short message, never the
-- value (the vault redacts it should the host's message quote it). `use_no` is the credential's
-- use count at that use: the paging cursor. Append-only.
create table integration_credential_uses (
  org_id uuid not null,
  credential_id uuid not null,
  use_no bigint not null check (use_no >= 1),
  used_by text not null check (used_by ~ '^[a-z0-9]([a-z0-9._:-]{0,62}[a-z0-9])?$'),
  started_at timestamptz not null,
  finished_at timestamptz not null,
  status text not null check (status in ('ok', 'failed')),
  message text not null default '' check (length(message) <= 200),
  primary key (org_id, credential_id, use_no),
  foreign key (org_id, credential_id) references integration_credentials (org_id, id) on delete cascade
);
select palisade_admin.tenant_table('integration_credential_uses');

-- Credentials are never deleted by the runtime (soft delete); history and uses are append-only.
grant select, insert, update on integration_credentials to {{runtime_role}};
grant select, insert on integration_credential_rotations to {{runtime_role}};
grant select, insert on integration_credential_uses to {{runtime_role}};
