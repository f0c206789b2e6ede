-- SSO sign-in (issue 12): how each session was proven, and which identity-provider subject is
-- which user.

-- auth_method: the method that opened the session (null for sessions opened before this column).
-- sso_org_id / sso_connection_id: for an SSO session, the org and connection that proved it, so
-- that switching SSO enforcement on can end every other session of the org's users.
alter table sessions
  add column auth_method text check (auth_method in ('password', 'totp', 'recovery_code', 'passkey', 'sso')),
  add column sso_org_id uuid,
  add column sso_connection_id uuid;

-- A user's identity at one of an org's identity providers. Linked once, by a sign-in that proved
-- both sides (never by an email address alone); every later SSO sign-in finds the user by
-- (connection, issuer, subject), so an IdP asserting someone else's email reaches nobody.
create table sso_identities (
  org_id uuid not null,
  connection_id uuid not null,
  -- OIDC: the ID token's iss (several for a multi-tenant issuer); SAML: the IdP entity id.
  issuer text not null,
  -- OIDC sub; SAML NameID.
  subject text not null,
  user_id uuid not null references users (id) on delete cascade,
  -- What the IdP said at the link and at the last sign-in (shown to admins, not trusted for routing).
  email text not null default '',
  linked_at timestamptz not null,
  last_sign_in_at timestamptz,
  primary key (org_id, connection_id, issuer, subject),
  unique (org_id, connection_id, user_id),
  foreign key (org_id, connection_id) references sso_connections (org_id, id) on delete cascade
);
select palisade_admin.tenant_table('sso_identities');
create index sso_identities_user_idx on sso_identities (user_id);

grant select, insert, update on sso_identities to {{runtime_role}};

-- A pending second step after an SSO sign-in (the connection asks for Palisade's own factor on
-- top): the session it ends in is still that org's SSO session.
alter table mfa_challenges
  add column sso_org_id uuid,
  add column sso_connection_id uuid;

-- The SSO callback hands a pending second step to the page in the browser with a code in the
-- redirect URL: single use, 60 seconds, only its SHA-256 kept. Redeeming it starts the second
-- step (an mfa_challenges token in the answer body, never in a URL).
create table sso_handovers (
  token_hash text primary key,
  user_id uuid not null references users (id) on delete cascade,
  session_epoch integer not null,
  sso_org_id uuid not null,
  sso_connection_id uuid not null,
  expires_at timestamptz not null,
  used_at timestamptz
);
create index sso_handovers_expiry_idx on sso_handovers (expires_at);

grant select, insert, update on sso_handovers to {{runtime_role}};
