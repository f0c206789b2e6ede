-- The authentication functions name tables unqualified. Pinning their search_path (public, then
-- pg_temp last) means a temporary table created on a pooled connection can never shadow
-- sessions, users or memberships for later requests on that connection.
alter function palisade_membership(uuid, uuid) set search_path = public, pg_temp;
alter function palisade_session_in_org(text, uuid) set search_path = public, pg_temp;

-- Expired ceremonies are purged as new ones are stored (identity/passkeys.ts).
create index webauthn_challenges_expiry_idx on webauthn_challenges (expires_at);
