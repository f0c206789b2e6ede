-- Single sign-on connections (issue 12): an org's identity providers. One row per connection,
-- of either kind; the kind's settings (OIDC issuer, client id, scopes; SAML IdP entity id, SSO
-- URL, certificates) are a JSON document the service validates, none of them secret.

create table sso_connections (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  kind text not null check (kind in ('oidc', 'saml')),
  name text not null,
  -- A new connection signs nobody in until an admin has tested and enabled it.
  enabled boolean not null default false,
  settings jsonb not null,
  -- The OIDC client secret, sealed with the org's data key (AAD: org, table, column, row).
  secret_sealed text,
  created_by uuid not null,
  created_at timestamptz not null,
  updated_at timestamptz not null,
  primary key (org_id, id)
);
select palisade_admin.tenant_table('sso_connections');

grant select, insert, update, delete on sso_connections to {{runtime_role}};
