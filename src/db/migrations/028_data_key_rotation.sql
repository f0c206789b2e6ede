-- Per-org data-key rotation (issue 14): a new key becomes active at once, a background job
-- re-encrypts the org's sealed values under it, and the key it replaced stays for a rollback
-- window before its material is destroyed.

-- A retired key keeps opening old values until the job has moved them, and stays through the
-- rollback window. Destroyed: the row stays (the audit trail and sealed strings name its id)
-- but without key material, so nothing it sealed can be opened by any key that remains.
alter table org_keys
  add column retired_at timestamptz,
  add column destroy_after timestamptz,
  add column destroyed_at timestamptz,
  alter column kek_id drop not null,
  alter column wrapped drop not null,
  add constraint org_keys_material check ((destroyed_at is null) = (wrapped is not null and kek_id is not null)),
  add constraint org_keys_active_not_destroyed check (not (active and destroyed_at is not null));

-- One row per rotation (and per rollback, which is a rotation back to the retired key). The
-- cursor says where the job is: the registry column ('table.column') and the last row key
-- done in it, so a job that dies resumes at the batch after the last one it committed.
create table org_key_rotations (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  from_key_id uuid not null,
  to_key_id uuid not null,
  trigger text not null check (trigger in ('manual', 'schedule', 'rollback')),
  requested_by uuid,
  status text not null check (status in ('running', 'done', 'superseded')),
  -- 'pass': the first walk over every sealed column; 'wait': walked, until sweep_after;
  -- 'sweep': the final walk, once every instance's active-key cache has expired, for values
  -- sealed under the old key meanwhile.
  phase text not null default 'pass' check (phase in ('pass', 'wait', 'sweep')),
  cursor_column text,
  cursor_row text,
  total bigint not null default 0 check (total >= 0),
  done bigint not null default 0 check (done >= 0),
  started_at timestamptz not null,
  sweep_after timestamptz not null,
  finished_at timestamptz,
  primary key (org_id, id)
);
-- At most one rotation runs per org: the second of two concurrent requests hits this.
create unique index org_key_rotations_running on org_key_rotations (org_id) where status = 'running';
create index org_key_rotations_recent on org_key_rotations (org_id, started_at desc);
select palisade_admin.tenant_table('org_key_rotations');

-- Which orgs have data-key work due and when (a rotation's next batch, its final sweep, a
-- retired key's destruction, the next scheduled rotation): what the worker reads before it can
-- bind an org. Global by design like webhook_due (db/catalog.ts): an org id and a time only.
create table data_key_due (
  org_id uuid primary key,
  due_at timestamptz not null
);
create index data_key_due_at on data_key_due (due_at);

-- Every org that has a data key is looked at once, then on its own schedule.
insert into data_key_due (org_id, due_at) select distinct org_id, now() from org_keys on conflict do nothing;

-- The runtime role may retire, reactivate (rollback) and destroy keys, and nothing else: it
-- cannot put other key material in a row (a key it knows would then seal new data), bring a
-- destroyed key back, or move a key to another org or id. The owner (migrations, operator
-- commands such as a KEK rewrap) is not bound by this.
create or replace function palisade_admin.org_keys_guard() returns trigger
language plpgsql set search_path = pg_catalog as $$
begin
  if pg_has_role(current_user, (select relowner from pg_class where oid = tg_relid), 'USAGE') then
    return new;
  end if;
  if new.org_id <> old.org_id or new.id <> old.id or new.created_at <> old.created_at then
    raise exception 'a data key keeps its org, id and creation time' using errcode = '42501';
  end if;
  if old.destroyed_at is not null then
    raise exception 'a destroyed data key stays destroyed' using errcode = '42501';
  end if;
  if new.destroyed_at is null and (new.wrapped is distinct from old.wrapped or new.kek_id is distinct from old.kek_id) then
    raise exception 'data key material is written once' using errcode = '42501';
  end if;
  if new.destroyed_at is not null and (new.wrapped is not null or new.kek_id is not null) then
    raise exception 'destroying a data key removes its material' using errcode = '42501';
  end if;
  if old.active and not new.active and (new.retired_at is null or new.destroy_after is null) then
    raise exception 'a data key leaves service retired, with its destruction date' using errcode = '42501';
  end if;
  return new;
end $$;
revoke all on function palisade_admin.org_keys_guard() from public;
create trigger org_keys_guard before update on org_keys for each row execute function palisade_admin.org_keys_guard();

grant update (active, retired_at, destroy_after, destroyed_at, kek_id, wrapped) on org_keys to {{runtime_role}};
grant select, insert, update on org_key_rotations to {{runtime_role}};
grant select, insert, update, delete on data_key_due to {{runtime_role}};
