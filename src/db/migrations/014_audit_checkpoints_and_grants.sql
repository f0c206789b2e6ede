-- Review R4 finding 3: the chain head is authenticated.

-- The head carries an HMAC of (org, seq, hash) under a key derived from the KEK named by key_id
-- (configuration, never the database): setting the head back to an earlier event after deleting
-- the last ones, which needs only values readable in the tables, no longer verifies.
alter table audit_heads add column key_id text not null default '', add column mac text not null default '';

-- Heads written before this migration carry no MAC, and SQL cannot make one (no key here). The
-- process that applies this migration holds the keys: it seals the heads listed here, then drops
-- the list (audit/seal.ts). The table owner reads every head only with FORCE lifted, inside
-- this transaction.
alter table audit_heads no force row level security;
create table palisade_admin.audit_heads_to_seal as
  select org_id, seq, hash, ''::text as key_id, ''::text as mac from audit_heads;
alter table audit_heads force row level security;
do $$ begin
  if not exists (select 1 from palisade_admin.audit_heads_to_seal) then
    drop table palisade_admin.audit_heads_to_seal;
  end if;
end $$;
