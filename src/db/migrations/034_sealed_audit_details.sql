-- Audit events' personal part sealed (issue 14): the details, the client address and the user
-- agent of each new event are sealed with the org's data key into personal_sealed; the row keeps
-- '' for the address and user agent and {"sealed": "sha256:…"} as its details, the digest of the
-- sealed plaintext (which carries a random salt). The chain covers the row as stored, so
-- `palisade audit verify` needs no data key; the reader opens the part for those with audit:read
-- and checks it against the digest. Events written before this migration keep their clear details
-- (the chain covers them as they are).
alter table audit_events add column personal_sealed text;

-- The trail stays append-only, with one exception: the sealed personal part may be re-sealed (a
-- data-key rotation: same plaintext, so the digest in the chain still matches) or removed (an
-- erasure), never given to an event that had none, and nothing else of a row may change.
drop trigger audit_events_append_only on audit_events;
create trigger audit_events_append_only before delete or truncate on audit_events
  for each statement execute function palisade_admin.audit_is_append_only();

create function palisade_admin.audit_personal_only() returns trigger
language plpgsql set search_path = pg_catalog as $$
begin
  if (new.org_id, new.seq, new.id, new.at, new.actor_type, new.actor_id, new.actor_role, new.action, new.target_type, new.target_id,
      new.result, new.ip, new.user_agent, new.request_id, new.details, new.key_id, new.prev_hash, new.hash)
     is distinct from
     (old.org_id, old.seq, old.id, old.at, old.actor_type, old.actor_id, old.actor_role, old.action, old.target_type, old.target_id,
      old.result, old.ip, old.user_agent, old.request_id, old.details, old.key_id, old.prev_hash, old.hash) then
    raise exception 'audit_events is append-only' using errcode = 'insufficient_privilege';
  end if;
  if old.personal_sealed is null and new.personal_sealed is not null then
    raise exception 'an audit event without a sealed part gets none' using errcode = 'insufficient_privilege';
  end if;
  return new;
end $$;
revoke all on function palisade_admin.audit_personal_only() from public;
create trigger audit_events_personal_only before update on audit_events
  for each row execute function palisade_admin.audit_personal_only();

grant update (personal_sealed) on audit_events to {{runtime_role}};
