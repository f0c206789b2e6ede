-- Personal data sealed at rest (issue 14): the client address and user agent a session was
-- opened from are sealed together in client_sealed under the system scope 'sessions' (AAD:
-- sessions / client_sealed / session id); ip and user_agent keep '' for new sessions. Sessions
-- opened before this migration keep theirs in clear until they end (the absolute lifetime, at
-- most 30 days), and those already ended lose them now.
alter table sessions add column client_sealed text;
update sessions set ip = '', user_agent = '' where revoked_at is not null or absolute_expires_at <= now();
