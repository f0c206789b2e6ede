-- Social sign-in (issue 12): identities at the providers the deployment configured (Google,
-- GitHub, generic OIDC such as Microsoft personal accounts). Global like magic_links: the
-- account is found before any org is bound. Linked once, by a sign-in that proved both sides
-- (a new account the provider's verified address created, or a signed-in session that linked it);
-- every later sign-in finds the user by (provider, issuer, subject), never by an email address.
create table social_identities (
  -- The deployment's provider id (google, github, or a SOCIAL_OIDC_PROVIDERS entry).
  provider text not null check (provider ~ '^[a-z][a-z0-9-]{1,31}$'),
  -- OIDC: the ID token's iss; GitHub: the origin of its authorization endpoint. Part of the key,
  -- so that pointing a provider id at another issuer reaches none of the old links.
  issuer text not null,
  -- OIDC sub; GitHub's numeric user id (never the login, which its owner can change).
  subject text not null check (length(subject) between 1 and 255),
  user_id uuid not null references users (id) on delete cascade,
  -- What the provider said at the link and at the last sign-in (shown to the user, never used for routing).
  email text not null default '',
  linked_at timestamptz not null,
  last_sign_in_at timestamptz,
  primary key (provider, issuer, subject),
  -- One identity per provider per account.
  unique (provider, user_id)
);
create index social_identities_user_idx on social_identities (user_id);

grant select, insert, update on social_identities to {{runtime_role}};

-- A pending second step after a social sign-in uses the SSO handover (no org, no connection).
alter table sso_handovers
  alter column sso_org_id drop not null,
  alter column sso_connection_id drop not null;

alter table sessions drop constraint sessions_auth_method_check;
alter table sessions add constraint sessions_auth_method_check
  check (auth_method in ('password', 'totp', 'recovery_code', 'passkey', 'sso', 'magic_link', 'social'));
