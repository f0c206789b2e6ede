-- SAML sign-in (issue 12). The ACS URL names a connection only (the IdP posts there with no
-- org in sight), and a sign-in's single-use state has to hold across restarts and instances:
-- three global tables, none holding tenant data, all gone with their connection.

-- Which org a SAML connection belongs to: the ACS and SP metadata routes read it before they
-- can bind the org (the same reason verified_domains is global). Nothing but the two ids.
create table saml_acs_routes (
  connection_id uuid primary key,
  org_id uuid not null,
  foreign key (org_id, connection_id) references sso_connections (org_id, id) on delete cascade
);

-- The ID of each AuthnRequest this SP sent (SP-initiated sign-in): a Response's InResponseTo must
-- name one, of the same connection, unexpired, and spends it (used_at): each request answers once.
create table saml_requests (
  request_id text primary key,
  connection_id uuid not null references saml_acs_routes (connection_id) on delete cascade,
  expires_at timestamptz not null,
  used_at timestamptz
);
create index saml_requests_expiry_idx on saml_requests (connection_id, expires_at);

-- Assertion IDs already accepted, per connection, kept until the assertion's own NotOnOrAfter
-- (bounded): the same signed assertion posted again, from anywhere, is refused by the primary key.
create table saml_assertions (
  connection_id uuid not null references saml_acs_routes (connection_id) on delete cascade,
  assertion_id text not null,
  expires_at timestamptz not null,
  primary key (connection_id, assertion_id)
);
create index saml_assertions_expiry_idx on saml_assertions (connection_id, expires_at);

grant select, insert on saml_acs_routes to {{runtime_role}};
-- delete: expired rows are swept by the sign-in itself (a bounded delete per connection).
grant select, insert, update, delete on saml_requests to {{runtime_role}};
grant select, insert, delete on saml_assertions to {{runtime_role}};
