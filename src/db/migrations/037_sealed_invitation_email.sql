-- Personal data sealed at rest (issue 14): an invitation's address is sealed with the org's data
-- key (AAD: org / invitations / email_sealed / invitation id) and found by its keyed blind index
-- (email_index: HMAC-SHA-256 of the normalised address under the deployment's blind-index key,
-- never in the database); `email` keeps '' for new invitations. Invitations made before this
-- migration keep their address in clear until they expire (seven days) or are deleted.
alter table invitations add column email_sealed text, add column email_index text;
create index invitations_email_index_idx on invitations (org_id, email_index);
