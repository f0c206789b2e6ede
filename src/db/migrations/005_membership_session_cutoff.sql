-- An admin's "sign out" cuts a member's sessions off from that org: sessions created before
-- this instant no longer reach it. Sessions are global, so this is what keeps one org from
-- signing a user out of the other orgs they belong to.
alter table memberships add column sessions_revoked_at timestamptz;
