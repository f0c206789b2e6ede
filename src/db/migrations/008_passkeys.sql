-- Passkeys (WebAuthn): global like the user. A passkey signs in on its own (discoverable, with
-- user verification) and counts as a second factor after a password.
create table passkeys (
  id uuid primary key,
  user_id uuid not null references users (id) on delete cascade,
  -- The authenticator's credential id (base64url) and COSE public key: public values, not secrets.
  credential_id text not null unique,
  public_key bytea not null,
  -- The signature counter last seen: an assertion must move it forward (cloned authenticators).
  counter bigint not null default 0,
  transports text[] not null default '{}',
  name text not null,
  created_at timestamptz not null,
  last_used_at timestamptz
);
create index passkeys_user_idx on passkeys (user_id);

-- Each ceremony's challenge: single-use, two minutes, bound to a user when one is known.
create table webauthn_challenges (
  token_hash text primary key,
  user_id uuid references users (id) on delete cascade,
  purpose text not null check (purpose in ('register', 'sign_in', 'second_factor', 'step_up')),
  challenge text not null,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  used_at timestamptz
);

grant select, insert, update, delete on passkeys, webauthn_challenges to {{runtime_role}};
