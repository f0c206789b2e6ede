-- Tenant export (issue 14, "Export and erasure"; numbered 038 because main holds 035-037): an owner asks for every row the org owns; a
-- background job writes it, batch by batch, into an encrypted archive under the export directory
-- (src/domains/exports/). These tables are the job's bookkeeping: they are themselves excluded
-- from the archive (exports/policy.ts says why).

create table org_exports (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  requested_by uuid not null,
  state text not null check (state in ('queued', 'running', 'done', 'failed', 'expired')),
  created_at timestamptz not null,
  started_at timestamptz,
  finished_at timestamptz,
  -- When the archive is deleted (set when it is done).
  expires_at timestamptz,
  rows_total bigint not null default 0,
  rows_done bigint not null default 0,
  -- The archive's own key (AES-256-GCM), sealed with the org's data key: shredding the org makes
  -- its archives unreadable too.
  key_sealed text not null,
  -- Resume point: the table being written, its last key (json array of text), the bytes and
  -- encrypted records of the file known to be committed. A crash after a write but before the
  -- commit leaves bytes past `bytes_written`: the next turn truncates them and redoes the batch.
  -- The tables the export covers, fixed when it starts: a migration during the export (a new
  -- tenant table) cannot shift which table table_no names.
  tables jsonb,
  table_no integer not null default 0,
  cursor jsonb,
  part_no integer not null default 0,
  bytes_written bigint not null default 0,
  records_written bigint not null default 0,
  attempts integer not null default 0,
  manifest_sha256 text,
  error text,
  primary key (org_id, id)
);
create index org_exports_state on org_exports (org_id, state, created_at);
select palisade_admin.tenant_table('org_exports');

-- One row per NDJSON part file in the archive (what the manifest lists), written with the batch.
create table org_export_parts (
  org_id uuid not null,
  export_id uuid not null,
  part_no integer not null,
  table_name text not null,
  file text not null,
  rows integer not null,
  bytes bigint not null,
  sha256 text not null,
  primary key (org_id, export_id, part_no),
  foreign key (org_id, export_id) references org_exports (org_id, id) on delete cascade
);
select palisade_admin.tenant_table('org_export_parts');

-- Download links: the token's SHA-256 only; single use (used_at set atomically), short-lived.
create table org_export_links (
  org_id uuid not null,
  id uuid not null,
  export_id uuid not null,
  token_hash text not null unique,
  created_by uuid not null,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  used_at timestamptz,
  primary key (org_id, id),
  foreign key (org_id, export_id) references org_exports (org_id, id) on delete cascade
);
select palisade_admin.tenant_table('org_export_links');

-- Which org has export work due and when: what the job reads before it can bind an org. Global by
-- design like data_key_due (db/catalog.ts): an org id and a time only.
create table export_due (
  org_id uuid primary key,
  due_at timestamptz not null
);
create index export_due_at on export_due (due_at);

-- The deployment's archive signing keys (Ed25519). The public half is published
-- (GET /.well-known/palisade-export-keys); the private half is sealed with the system scope
-- `export-signing` data key (the sealer), never stored in clear.
create table export_signing_keys (
  id text primary key,
  public_jwk jsonb not null,
  private_sealed text not null,
  active boolean not null default true,
  created_at timestamptz not null
);
create unique index export_signing_keys_active on export_signing_keys (active) where active;

-- Exports advance and end by update (their rows stay, with the org, for the list and the trail);
-- parts are append-only; a link is spent by update.
grant select, insert, update on org_exports, org_export_links to {{runtime_role}};
grant select, insert on org_export_parts to {{runtime_role}};
grant select, insert, update, delete on export_due to {{runtime_role}};
grant select, insert on export_signing_keys to {{runtime_role}};
