-- Hardened uploads (issue 16): a project's files, their sealed per-file keys, and each org's
-- usage against its plan's quota. The bytes live in a file store (src/domains/files/storage.ts),
-- sealed; a row names them by ids only.

-- The org's plan: its upload limits (per file and in all) come from the deployment's plan table
-- (PALISADE_UPLOAD_PLANS). Set by the operator (`palisade orgs plan`), not by the org itself.
alter table org_settings add column plan text not null default 'free'
  check (plan ~ '^[a-z][a-z0-9_-]{0,31}$');

-- Extensions a project accepts (lower case, no dot); null: every type the name check admits.
-- The denylist of executable and script types applies either way.
alter table projects add column file_extensions text[]
  check (file_extensions is null or cardinality(file_extensions) <= 100);

create table files (
  org_id uuid not null,
  project_id uuid not null,
  id uuid not null,
  -- The checked name (names.ts): shown and offered as the download's file name, never a storage key.
  name text not null check (octet_length(name) between 1 and 255),
  -- What the bytes are (content.ts), not what the client declared.
  content_type text not null check (octet_length(content_type) <= 200),
  -- receiving: bytes are streaming in and being checked; never listed or served. Only a clean
  -- verdict and passing checks make a file available; a refusal deletes the row.
  state text not null check (state in ('receiving', 'available')),
  -- Plaintext bytes: final once available; while receiving, what has arrived so far.
  size_bytes bigint not null default 0 check (size_bytes >= 0),
  -- What counts against the org's quota: while receiving, the bytes reserved ahead of the
  -- stream; once available, the file's size.
  reserved_bytes bigint not null default 0 check (reserved_bytes >= 0),
  sha256 text check (sha256 ~ '^[0-9a-f]{64}$'),
  -- The file's own AES-256 key, sealed with the org's data key (AAD: org, files, key_sealed, id).
  key_sealed text not null,
  -- HTML, SVG, XML: a browser could run them inline; served as attachments (every file is).
  active boolean not null default false,
  -- false only where the deployment opted out of scanning (PALISADE_UPLOADS_UNSCANNED, development).
  scanned boolean not null,
  uploaded_by_type text not null check (uploaded_by_type in ('user', 'api_key')),
  uploaded_by uuid not null,
  created_at timestamptz not null,
  -- Moved on by each reservation while receiving: a row left by a crashed process is found by it.
  touched_at timestamptz not null,
  available_at timestamptz,
  primary key (org_id, id),
  foreign key (org_id, project_id) references projects (org_id, id) on delete cascade,
  check ((state = 'available') = (available_at is not null and sha256 is not null))
);
create index files_project on files (org_id, project_id, created_at desc, id) where state = 'available';
create index files_receiving on files (org_id, touched_at) where state = 'receiving';
select palisade_admin.tenant_table('files');
-- A member restricted to projects sees and writes the files of those projects only (as assets).
create policy project_scope on files as restrictive for all
  using ((select coalesce(current_setting('palisade.project_ids', true), '') = '*')
         or project_id = any ((select string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ','))::uuid[]))
  with check ((select coalesce(current_setting('palisade.project_ids', true), '') = '*')
         or project_id = any ((select string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ','))::uuid[]));

-- Bytes counted against each org's quota: the sum of its files' reserved_bytes, kept by the
-- trigger below (also through the cascade of a project's deletion). A reservation updates a
-- file's reserved_bytes; the trigger's upsert locks the org's row until the transaction ends, so
-- concurrent reservations of one org queue and each sees the others' bytes before checking.
create table org_file_usage (
  org_id uuid primary key references organizations (org_id) on delete cascade,
  bytes bigint not null default 0 check (bytes >= 0)
);
select palisade_admin.tenant_table('org_file_usage');

create or replace function palisade_admin.files_usage() returns trigger
language plpgsql set search_path = public, pg_temp as $$
declare
  delta bigint;
  org uuid;
begin
  if tg_op = 'INSERT' then
    delta := new.reserved_bytes; org := new.org_id;
  elsif tg_op = 'DELETE' then
    delta := -old.reserved_bytes; org := old.org_id;
  else
    delta := new.reserved_bytes - old.reserved_bytes; org := new.org_id;
  end if;
  if delta <> 0 then
    insert into org_file_usage (org_id, bytes) values (org, greatest(delta, 0))
      on conflict (org_id) do update set bytes = greatest(org_file_usage.bytes + delta, 0);
  end if;
  return null;
end $$;
create trigger files_usage after insert or update of reserved_bytes or delete on files
  for each row execute function palisade_admin.files_usage();
-- A trigger function: fired, never called (firing checks no EXECUTE privilege).
revoke all on function palisade_admin.files_usage() from public;

-- Stored bytes whose row is gone (deleted, refused, swept, or with its project): the trigger
-- below records each deletion in the same transaction, so no way of removing a row (a project's
-- cascade included) can forget its bytes; the files service deletes them from the store after the
-- commit and then the entry. No foreign key to the org: an org's deletion cascades into files,
-- and its entries must not fail the statement (the org's keys are destroyed with it anyway).
create table files_gone (
  org_id uuid not null,
  file_id uuid not null,
  gone_at timestamptz not null default now(),
  primary key (org_id, file_id)
);
select palisade_admin.tenant_table('files_gone');

create or replace function palisade_admin.files_gone() returns trigger
language plpgsql set search_path = public, pg_temp as $$
begin
  insert into files_gone (org_id, file_id) values (old.org_id, old.id) on conflict do nothing;
  return null;
end $$;
create trigger files_gone after delete on files for each row execute function palisade_admin.files_gone();
revoke all on function palisade_admin.files_gone() from public;

grant select, insert, update, delete on files to {{runtime_role}};
grant select, insert, delete on files_gone to {{runtime_role}};
grant select, insert, update on org_file_usage to {{runtime_role}};
