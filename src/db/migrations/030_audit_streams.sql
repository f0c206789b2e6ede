-- Audit streaming (issue 14): each org's audit events, as they commit, to its SIEM. A stream
-- reads audit_events after its cursor; nothing is written twice and the request path is
-- unchanged. The cursor is the org chain's seq: appends are serialized on the org's head row,
-- so the committed events of an org are always a gap-free prefix 1..head, and "seq > cursor"
-- never skips an event that commits later.

create table audit_streams (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  kind text not null check (kind in ('https', 'syslog')),
  -- https: the receiver's URL. syslog: host and port, over TLS unless tls is false.
  url text,
  host text,
  port integer check (port between 1 and 65535),
  tls boolean not null default true,
  description text not null default '',
  enabled boolean not null default true,
  -- https: the whsec_ signing secret (Standard Webhooks), sealed with the org's data key (AAD:
  -- org, table, column, row). During a rotation the previous one signs too, until it expires.
  secret_sealed text,
  previous_secret_sealed text,
  previous_secret_expires_at timestamptz,
  -- The last event the receiver acknowledged (its seq in the org's chain), and its time.
  cursor_seq bigint not null check (cursor_seq >= 0),
  cursor_at timestamptz,
  -- Delivery state, written by the worker only.
  consecutive_failures integer not null default 0 check (consecutive_failures >= 0),
  -- A short code from a closed list (audit-streams/transport codes), never a peer's words.
  last_error text check (last_error ~ '^[a-z0-9_]{1,32}$'),
  last_attempt_at timestamptz,
  last_delivered_at timestamptz,
  -- No attempt before then (retry backoff).
  next_attempt_at timestamptz,
  -- A worker holds the stream (one batch in flight) until then; one that dies lets it go.
  lease_until timestamptz,
  created_by uuid not null,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  primary key (org_id, id),
  constraint audit_streams_https check (kind <> 'https' or (url is not null and secret_sealed is not null and host is null and port is null)),
  constraint audit_streams_syslog check (kind <> 'syslog' or (url is null and secret_sealed is null and host is not null and port is not null))
);
select palisade_admin.tenant_table('audit_streams');

-- Which orgs have a stream, and when the worker should look at them next: all it must know
-- before it can bind an org. Global by design (db/catalog.ts): an org id and a time, nothing
-- of the stream or its events.
create table audit_stream_orgs (
  org_id uuid primary key,
  check_at timestamptz not null
);
create index audit_stream_orgs_check_idx on audit_stream_orgs (check_at);

grant select, insert, update, delete on audit_streams, audit_stream_orgs to {{runtime_role}};
