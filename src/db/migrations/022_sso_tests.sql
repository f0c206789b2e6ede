-- "Test connection" (issue 12): an admin runs a real sign-in against the org's IdP and reads
-- what it asserted, with no session and no account created. One row per run: who started it
-- (only they read it back), and its outcome. The claims are personal data of whoever signed in
-- at the IdP: sealed with the org's data key, and the row is short-lived.
create table sso_tests (
  org_id uuid not null,
  id uuid not null,
  connection_id uuid not null,
  started_by uuid not null references users (id) on delete cascade,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  status text not null default 'pending' check (status in ('pending', 'succeeded', 'failed')),
  finished_at timestamptz,
  -- succeeded: the sealed JSON of the claims and of what a sign-in would do with them.
  result_sealed text,
  -- failed: why, in words fit for the admin (never a token or the IdP's own text).
  reason text,
  primary key (org_id, id),
  foreign key (org_id, connection_id) references sso_connections (org_id, id) on delete cascade
);
select palisade_admin.tenant_table('sso_tests');

-- Written once when started and once when the IdP answers; a read refuses expired rows, and
-- rows leave with their connection (cascade).
grant select, insert, update on sso_tests to {{runtime_role}};
