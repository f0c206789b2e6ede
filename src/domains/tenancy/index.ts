export { resolveAccess, standingFrom, bindingOf, requireOrg, accessFrom, loadMembership, permissionsOf, effectivePermissionsOf, isRestricted, assertRestrictable, assertCanGrant, assertCanScope, assertCanActOn, assertCanActOnCredentials, assertCanManage } from './access.js';
export type { RoleKey, OrgPolicy, Standing, MembershipRow } from './access.js';
export type { TenancyDeps } from './deps.js';
export { insertOrg, createOrgService, clearAdminIpAllowlist } from './orgs.js';
export type { OrgService, MyOrgView } from './orgs.js';
export { createMemberService } from './members.js';
export type { MemberService } from './members.js';
export { createInvitationService } from './invitations.js';
export type { InvitationService } from './invitations.js';
export { createRoleService } from './roles.js';
export type { RoleService } from './roles.js';
export { createProjectService } from './projects.js';
export type { ProjectService } from './projects.js';
export { tenancyRoutes } from './routes.js';
// For other domains' answers that embed an organization (the signed-in user's orgs).
export { orgView, permission, roleKey } from './responses.js';
export type { OrgView, OrgSettingsView, MemberView, InvitationView, RoleView, ProjectView } from './responses.js';
export { createDeletionService, type DeletionService } from './deletion.js';
