-- Verified email domains (issue 12): an org claims a domain and proves it controls it with a DNS
-- TXT record; a verified domain routes its users' sign-ins to the org's SSO and puts them under
-- its SSO enforcement.

-- An org's claims, pending or verified. The record value is not a secret: it is published in
-- the claimant's DNS, and it proves nothing for any other org (each claim has its own).
create table org_domains (
  org_id uuid not null references organizations (org_id) on delete cascade,
  id uuid not null,
  domain text not null check (domain = lower(domain) and length(domain) between 3 and 253),
  record_value text not null,
  created_by uuid not null,
  created_at timestamptz not null,
  verified_at timestamptz,
  primary key (org_id, id),
  unique (org_id, domain)
);
select palisade_admin.tenant_table('org_domains');

-- Which org a verified domain belongs to. Global by design (db/catalog.ts): signing in with an
-- email address must find its org before any org is bound, and the primary key is what makes a
-- domain verified by one org unclaimable by another. It holds a domain name and an org id only.
create table verified_domains (
  domain text primary key,
  org_id uuid not null references organizations (org_id) on delete cascade
);

grant select, insert, update, delete on org_domains to {{runtime_role}};
grant select, insert, delete on verified_domains to {{runtime_role}};
