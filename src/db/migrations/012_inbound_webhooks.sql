-- Inbound webhooks (issue #5): events a provider (Stripe, any Standard Webhooks sender) posts
-- to an org. A source is one provider endpoint of one org with the secret that provider signs
-- with; inbound_events remembers every event id a source has applied, which is what refuses a
-- replay and makes a retried or concurrently delivered event apply once.

create table inbound_sources (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  -- A new provider (src/domains/inbound/providers.ts) extends this list in its own migration.
  provider text not null check (provider in ('standard', 'stripe')),
  name text not null,
  -- The provider's signing secret, sealed with the org's data key (AAD: org, table, column,
  -- row). Emptied when the source is deleted: a deleted source keeps no credential.
  secret_sealed text not null,
  created_by uuid not null,
  created_at timestamptz not null,
  -- Deleted sources stay (without their secret) so that the audit trail's targets and the
  -- event ids they applied keep their meaning.
  deleted_at timestamptz,
  primary key (org_id, id)
);
select palisade_admin.tenant_table('inbound_sources');

create table inbound_events (
  org_id uuid not null,
  source_id uuid not null,
  event_id text not null check (length(event_id) between 1 and 255),
  type text not null,
  received_at timestamptz not null,
  -- The idempotency key: a second insert of the same event waits for the first transaction
  -- and then conflicts, so exactly one delivery applies the event.
  primary key (org_id, source_id, event_id),
  foreign key (org_id, source_id) references inbound_sources (org_id, id) on delete cascade
);
-- For a retention job (oldest first per org).
create index inbound_events_received_idx on inbound_events (org_id, received_at);
select palisade_admin.tenant_table('inbound_events');

-- Sources are never deleted by the runtime (soft delete); applied event ids are append-only.
grant select, insert, update on inbound_sources to {{runtime_role}};
grant select, insert on inbound_events to {{runtime_role}};
