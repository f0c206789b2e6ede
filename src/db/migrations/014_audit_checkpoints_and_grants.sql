-- Review R4 finding 3: the chain head is authenticated, and the runtime role keeps only the
-- privileges the code uses.

-- The head carries an HMAC of (org, seq, hash) under a key derived from the KEK named by key_id
-- (configuration, never the database): setting the head back to an earlier event after deleting
-- the last ones, which needs only values readable in the tables, no longer verifies.
alter table audit_heads add column key_id text not null default '', add column mac text not null default '';

-- Heads written before this migration carry no MAC, and SQL cannot make one (no key here): the
-- process that applies this migration holds the keys and seals them in this same transaction
-- (audit/seal.ts; it sets palisade.keyed_steps). Applied without it, those chains would refuse
-- every append: refuse the migration instead. FORCE applies to the owner too: lifted to look.
alter table audit_heads no force row level security;
do $$ begin
  if exists (select 1 from audit_heads) and coalesce(current_setting('palisade.keyed_steps', true), '') <> 'on' then
    raise exception 'migration 014 seals the existing audit chain heads with the keys: apply it with palisade migrate or palisade serve';
  end if;
end $$;
alter table audit_heads force row level security;

-- Privileges the runtime role held and no code uses. Every grant it keeps is listed, with the
-- code that needs it, in test/isolation/runtime-grants.test.ts.
-- Nothing deletes an organization, a user, a session (they are revoked), a reset token (used
-- once, then marked) or an org's settings: a role that could would erase an org's evidence trail
-- from the operator's view or a user's history.
revoke delete on organizations, users, sessions, password_resets, org_settings from {{runtime_role}};
-- Data keys are written once (rotation re-wraps them as an operator job, not a request); the mail
-- outbox is append-only.
revoke update, delete on org_keys, system_keys, mail_outbox from {{runtime_role}};
-- Project assignments and assets are added and removed, never edited.
revoke update on project_access, assets from {{runtime_role}};
-- Deliveries are kept as the delivery log (they leave only with their endpoint, by its cascade).
revoke delete on webhook_deliveries from {{runtime_role}};
-- Nor does it create temporary tables: one would shadow a table for every later unqualified
-- query on that pooled connection (pg_temp comes first in the default search_path). TEMP comes
-- from PUBLIC, so PUBLIC loses it on this database; its owner keeps it.
do $$ begin
  execute format('revoke temporary on database %I from public', current_database());
end $$;
