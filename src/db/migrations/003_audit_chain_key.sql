-- Audit links are HMACs under a key derived from a KEK (configuration, never the database):
-- the runtime role can insert rows but cannot produce a link that verifies. key_id names the KEK.
alter table audit_events add column key_id text not null default '';
