-- Magic sign-in links (issue 12): a mailed, single-use, 15-minute link that signs in the browser
-- that asked for it. Global like password_resets: the account is found before any org is bound.
create table magic_links (
  token_hash text primary key,
  user_id uuid not null references users (id) on delete cascade,
  -- SHA-256 of the random value in the asking browser's cookie: the link works in that browser only.
  browser_hash text not null,
  -- The account's session epoch when the link was issued: a reset or "sign out everywhere" since voids it.
  session_epoch integer not null,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  used_at timestamptz
);
create index magic_links_user_idx on magic_links (user_id);

grant select, insert, update on magic_links to {{runtime_role}};

alter table sessions drop constraint sessions_auth_method_check;
alter table sessions add constraint sessions_auth_method_check
  check (auth_method in ('password', 'totp', 'recovery_code', 'passkey', 'sso', 'magic_link'));
