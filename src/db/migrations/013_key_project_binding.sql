-- Deleting a project no longer deletes the keys bound to it (review S3 K-6): they are revoked
-- and audited in the same transaction (tenancy's onProjectDeleted), and their rows stay so that
-- the audit trail's actor ids keep resolving to a name, kind and creator. Without the foreign
-- key a bound key of a deleted project also binds RLS to a project that no longer exists: it
-- could see nothing even if it were not revoked.
alter table api_keys drop constraint api_keys_org_id_project_id_fkey;
