-- A session's touch (last_seen_at and longest_idle_seconds, written at most once a minute per
-- session by src/domains/sessions/touches.ts) no longer announces itself on palisade_auth.
--
-- Why: every touch dropped the session's cached authentication in every server process, so each
-- active session cost each instance a database read a minute, and the touches of sessions that
-- fell due together emptied the caches together (the session routes' tail after the first minute,
-- docs/performance.md). What a touch changes only makes a session look more recently active; a
-- cached row that is older than the database's says the session is idler than it is. The reader
-- makes that safe (sessions/service.ts verify): a cached row whose idle clock has reached the
-- point where it would decide anything (a touch due, the deployment's or the org's idle limit
-- near) is never used; the row is read again from the database. Every other change of a session
-- (revocation, rotation, epoch, proof, expiry) still announces itself, as before, and so does any
-- UPDATE that changes another column along with these two.
--
-- What migration 040 promised for every change no longer holds for these two columns alone: an
-- operator who backdates last_seen_at in psql to end a session is heard by no cache. A cached
-- row is used only within a touch interval (at most a minute; an org's limit / 4) of its own
-- last_seen_at and of its read, so such a session is refused within that bound. Revoking it
-- (revoked_at) is immediate, as before.
drop trigger auth_changed on sessions;
create trigger auth_changed after update on sessions
  for each row when ((to_jsonb(old) - 'last_seen_at' - 'longest_idle_seconds') is distinct from (to_jsonb(new) - 'last_seen_at' - 'longest_idle_seconds'))
  execute function palisade_admin.auth_changed_row();
create trigger auth_changed_delete after delete on sessions
  for each row execute function palisade_admin.auth_changed_row();
