-- SSO enforcement with break-glass (issue 12). An org that enforces SSO sends every user whose
-- email is in one of its verified domains to its identity provider: no password, passkey-first,
-- magic-link or social sign-in, no reset, no registration. Up to three of its owners keep a
-- local way in (password AND second factor, a session of at most an hour, audited, mailed).

-- One row per org that has set it (on or off; the break-glass list is kept while off). Global
-- like verified_domains, which it is read with: every sign-in checks it by the email's domain
-- before (and while) it issues a session, and no org is bound then. It holds an org id, a flag
-- and the user ids of the owners named for break-glass; the service writes the row of the
-- caller's bound org only (sso/enforcement.ts).
create table sso_enforcement (
  org_id uuid primary key references organizations (org_id) on delete cascade,
  enforced_since timestamptz,
  break_glass_owners uuid[] not null default '{}' check (cardinality(break_glass_owners) <= 3)
);

-- The org whose break-glass opened the session (null otherwise): such a session never outlives
-- an hour, and the sign-in gate lets it through that org's enforcement only.
alter table sessions add column break_glass_org_id uuid;

-- A break-glass sign-in's pending second step carries its org to the session it ends in.
alter table mfa_challenges add column break_glass_org_id uuid;

grant select, insert, update on sso_enforcement to {{runtime_role}};
