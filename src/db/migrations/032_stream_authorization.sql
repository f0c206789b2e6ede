-- HTTPS audit streams may send an Authorization header (Splunk HEC `Splunk <token>`, a bearer
-- token, an Elastic `ApiKey …`): most SIEM receivers authenticate that way, and the alternative,
-- a token in the URL, sits in clear in the row and in every proxy's log. Sealed with the org's
-- data key like the stream's signing secret; write-only through the API.
alter table audit_streams
  add column auth_header_sealed text,
  add constraint audit_streams_auth_header check (kind = 'https' or auth_header_sealed is null);
