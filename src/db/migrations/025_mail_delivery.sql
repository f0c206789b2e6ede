-- Mail delivery (issue 13): the outbox becomes the queue an SMTP worker sends from (mail/worker.ts).
-- 'kept' is the development outbox (no SMTP_URL): read by tests and the demo, never sent. Every
-- row written before this migration is one, so switching SMTP on later never mails old links.
alter table mail_outbox
  add column status text not null default 'kept' check (status in ('kept', 'pending', 'sent', 'failed')),
  add column attempts integer not null default 0 check (attempts >= 0),
  -- When the next attempt is due; while a worker holds the message, the end of its lease.
  add column next_attempt_at timestamptz,
  add column sent_at timestamptz,
  -- A short code from a closed list (mail/smtp.ts), never a server's text: that may quote the message.
  add column last_error text check (last_error ~ '^[a-z0-9_]{1,32}$'),
  add constraint mail_outbox_pending_is_due check (status <> 'pending' or next_attempt_at is not null);
create index mail_outbox_due_idx on mail_outbox (next_attempt_at) where status = 'pending';

-- The message stays append-only (014): recipient, subject and body cannot be rewritten by the
-- runtime role; the worker changes only the delivery state.
grant update (status, attempts, next_attempt_at, sent_at, last_error) on mail_outbox to {{runtime_role}};
