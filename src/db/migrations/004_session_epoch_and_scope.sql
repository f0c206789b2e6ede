-- Session epochs: every "sign out everywhere" (password reset or change, admin revocation)
-- bumps users.session_epoch, and a session is valid only while its epoch matches. A login that
-- checked the password before a reset, or a rotation racing a revocation, therefore yields a
-- dead session instead of one that outlives the reset.
alter table users add column session_epoch integer not null default 0;
alter table sessions add column epoch integer not null default 0;

-- Restricted members may change the projects they are assigned to, not create or reach others.
alter policy project_scope on projects
  with check (coalesce(current_setting('palisade.project_ids', true), '') = '*'
         or id = any (string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ',')::uuid[]));

-- The assignment list follows the project scope too: a restricted caller sees only assignments
-- to its own projects.
create policy project_scope on project_access as restrictive for all
  using (coalesce(current_setting('palisade.project_ids', true), '') = '*'
         or project_id = any (string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ',')::uuid[]))
  with check (coalesce(current_setting('palisade.project_ids', true), '') = '*'
         or project_id = any (string_to_array(nullif(nullif(current_setting('palisade.project_ids', true), ''), '*'), ',')::uuid[]));
