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

-- Everyone reads it (a sign-in has no org bound); only a transaction bound to the org writes
-- its row, so one wrong query cannot switch another org's enforcement off.
alter table sso_enforcement enable row level security;
alter table sso_enforcement force row level security;
create policy read_all on sso_enforcement for select using (true);
create policy own_insert on sso_enforcement for insert
  with check (org_id = nullif(current_setting('palisade.org_id', true), '')::uuid);
create policy own_update on sso_enforcement for update
  using (org_id = nullif(current_setting('palisade.org_id', true), '')::uuid)
  with check (org_id = nullif(current_setting('palisade.org_id', true), '')::uuid);

-- The org whose break-glass opened the session (null otherwise): such a session never outlives
-- an hour, and the sign-in gate lets it through that org's enforcement only.
alter table sessions add column break_glass_org_id uuid;

-- A break-glass sign-in's pending second step carries its org to the session it ends in.
alter table mfa_challenges add column break_glass_org_id uuid;

grant select, insert, update on sso_enforcement to {{runtime_role}};
