-- The longest gap between two uses of a session, in seconds. An org with a shorter idle limit
-- than the deployment compares against it, so that a session once idle for longer than the
-- org allows stays expired for that org: last_seen_at alone is moved forward by the very
-- request that is refused (or by any request to another org or to /api/me).
alter table sessions add column longest_idle_seconds integer not null default 0;
