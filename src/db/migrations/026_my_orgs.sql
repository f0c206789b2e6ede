-- "My organizations" in one read (review of issue 13, P2): GET /api/me and every completed
-- sign-in listed the user's orgs, then bound one transaction per org to read that org's custom
-- role and project assignments: 1 + N round trips for a member of N orgs. A user may now see,
-- with no org bound, the definition of the custom role they hold and their own project
-- assignments, in the orgs they are a member of: what they read per org already, nothing more.
-- Other members' rows, other roles and every other table stay behind tenant_isolation.
create policy own_custom_role on custom_roles for select
  using ((org_id, id) in (select m.org_id, m.custom_role_id from memberships m
                          where m.user_id = nullif(current_setting('palisade.user_id', true), '')::uuid));
create policy own_project_access on project_access for select
  using (user_id = nullif(current_setting('palisade.user_id', true), '')::uuid);
