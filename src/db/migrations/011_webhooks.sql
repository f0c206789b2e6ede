-- Outbound webhooks (issue #5): endpoints, a transactional outbox of deliveries written in the
-- same transaction as the audited change, and the attempt log.

create table webhook_endpoints (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  url text not null,
  description text not null default '',
  events text[] not null,
  enabled boolean not null default true,
  -- 'manual', or 'failing' when the worker gave up on it.
  disabled_reason text,
  -- whsec_ secrets, sealed with the org's data key. During a rotation the previous secret signs
  -- too, until previous_secret_expires_at.
  secret_sealed text not null,
  previous_secret_sealed text,
  previous_secret_expires_at timestamptz,
  consecutive_failures integer not null default 0,
  created_by uuid not null,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  primary key (org_id, id)
);
select palisade_admin.tenant_table('webhook_endpoints');

-- One row per event and endpoint: the outbox. message_id is the webhook-id receivers
-- deduplicate on; it stays the same on every retry and redelivery of the event.
create table webhook_deliveries (
  org_id uuid not null,
  id uuid not null,
  endpoint_id uuid not null,
  message_id text not null,
  event_type text not null,
  -- The exact bytes that are signed and sent.
  payload text not null,
  status text not null check (status in ('pending', 'succeeded', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz,
  -- A worker holds the delivery until then; a worker that dies lets it go when it passes.
  lease_until timestamptz,
  last_status integer,
  last_error text,
  last_latency_ms integer,
  created_at timestamptz not null,
  completed_at timestamptz,
  primary key (org_id, id),
  foreign key (org_id, endpoint_id) references webhook_endpoints (org_id, id) on delete cascade
);
create index webhook_deliveries_due_idx on webhook_deliveries (org_id, next_attempt_at) where status = 'pending';
create index webhook_deliveries_endpoint_idx on webhook_deliveries (org_id, endpoint_id, created_at desc);
select palisade_admin.tenant_table('webhook_deliveries');

create table webhook_attempts (
  org_id uuid not null,
  delivery_id uuid not null,
  attempt integer not null,
  at timestamptz not null,
  status integer,
  latency_ms integer not null,
  error text,
  primary key (org_id, delivery_id, attempt),
  foreign key (org_id, delivery_id) references webhook_deliveries (org_id, id) on delete cascade
);
select palisade_admin.tenant_table('webhook_attempts');

-- Which orgs have deliveries due, and when: the one thing the worker must know before it can
-- bind an org. Deliberately global (no RLS): it holds an org id and a time, no payload, URL or
-- event type (db/catalog.ts lists it as global by design).
create table webhook_due (
  org_id uuid primary key,
  due_at timestamptz not null
);

grant select, insert, update, delete on webhook_endpoints, webhook_deliveries, webhook_due to {{runtime_role}};
grant select, insert on webhook_attempts to {{runtime_role}};
