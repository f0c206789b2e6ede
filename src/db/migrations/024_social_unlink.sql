-- A user can unlink a social identity from their account (a lost or compromised provider account
-- must not stay a way in): the runtime deletes their own rows (social/identities.ts).
grant delete on social_identities to {{runtime_role}};
