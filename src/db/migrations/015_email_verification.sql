-- Email verification (issue 10, finding 6): an address counts as the account's only once the
-- mailbox has been proven, by a verification link (with the account's password) or a password
-- reset. Until then the account cannot sign in, so it cannot accept an invitation either, and
-- single sign-on must not link an identity to it (the SSO work checks email_verified_at).
alter table users add column email_verified_at timestamptz;

-- Accounts from before this migration were accepted under the old rule and may be signed in
-- right now: they count as verified rather than being locked out by an upgrade. An operator
-- who distrusts one sets its email_verified_at to null; its owner then verifies through
-- POST /api/auth/verify-email/resend.
update users set email_verified_at = created_at;

-- Verification links: single use, 24 hours, only SHA-256 of the secret (crypto/opaque-token.ts).
create table email_verifications (
  token_hash text primary key,
  user_id uuid not null references users (id) on delete cascade,
  created_at timestamptz not null,
  expires_at timestamptz not null,
  used_at timestamptz
);
create index email_verifications_user_idx on email_verifications (user_id);

grant select, insert, update, delete on email_verifications to {{runtime_role}};
