import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { orgParams, projectParams, slug, userText, uuid, email } from '../../http/schemas.js';
import { userActorOf } from '../../kernel/context.js';
import type { ErrorCode } from '../../kernel/errors.js';
import type { OrgService } from './orgs.js';
import type { DeletionService } from './deletion.js';
import type { MemberService } from './members.js';
import type { InvitationService } from './invitations.js';
import { permissionCatalogue as catalogue, type RoleService } from './roles.js';
import type { ProjectService } from './projects.js';
import type { SubjectService } from './subject.js';
import {
  acceptedInvitation, createdInvitation, invitationList, memberList, orgSettingsView, orgView, permission, permissionCatalogue, projectList, projectMemberList,
  projectView, roleKey, roleList, roleView, subjectExportView, erasureView,
} from './responses.js';

const memberParams = z.strictObject({ orgId: uuid, userId: uuid });
const assignment = z.strictObject({
  role: roleKey,
  customRoleId: uuid.nullish(),
  restricted: z.boolean().optional(),
});

/**
 * Any org-scoped console route can answer step_up_required: past the org's MFA grace period a
 * session not proven with the member's second factor is sent to step up (sessions
 * assertOrgPolicy), before the handler runs. problemCodesOf derives mfa_enrollment_required
 * from the same policy, not this one, so org-scoped routes name it here.
 */
const orgPolicy: readonly ErrorCode[] = ['step_up_required'];

export function tenancyRoutes(s: {
  orgs: OrgService;
  deletion: DeletionService;
  members: MemberService;
  invitations: InvitationService;
  roles: RoleService;
  projects: ProjectService;
  subjects: SubjectService;
}): AnyRoute[] {
  const tags = ['organizations'];
  return [
    defineRoute({
      method: 'POST', url: '/api/orgs', summary: 'Create an organization (the caller becomes its owner)', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'org.created' },
      status: 201, schema: { body: z.strictObject({ name: userText(100), slug }), response: orgView },
      errors: ['conflict'], // the slug is taken
      example: () => ({ name: 'Matrix Org', slug: `m-${Math.random().toString(36).slice(2, 10)}` }),
      handler: ({ ctx, body }) => s.orgs.create(ctx, userActorOf(ctx).userId, body),
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId', summary: 'Read the organization', tags,
      auth: { mode: 'session' }, api: true, permission: 'org:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: orgView }, errors: orgPolicy, whileDeleting: true,
      handler: ({ ctx }) => s.orgs.get(ctx),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId',
      summary: 'Delete the organization: at once every member\u2019s session stops reaching it and every API key is revoked; ' +
        'an owner can restore it during the grace period (PALISADE_ORG_DELETION_GRACE_DAYS), after which its data keys are destroyed',
      tags, auth: { mode: 'session' }, permission: 'org:delete', stepUp: true, rateLimit: 'authenticated', audit: { action: 'org.deletion_scheduled' },
      status: 202,
      schema: {
        params: orgParams,
        body: z.strictObject({ confirm: slug.meta({ description: 'The organization\u2019s slug, typed' }) }),
        response: orgView.shape.deletion.unwrap(),
      },
      errors: [...orgPolicy, 'conflict'], // already scheduled
      example: () => ({ confirm: 'type-the-slug' }),
      handler: ({ ctx, body }) => s.deletion.schedule(ctx, body.confirm),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/restore', summary: 'Restore an organization scheduled for deletion, within its grace period (API keys stay revoked)',
      tags, auth: { mode: 'session' }, permission: 'org:delete', stepUp: true, rateLimit: 'authenticated', audit: { action: 'org.restored' },
      // An owner outside the admin IP allowlist restores too (the list cannot be changed meanwhile).
      whileDeleting: true, ownerRecovery: true, schema: { params: orgParams, response: orgView }, errors: [...orgPolicy, 'conflict'], // not scheduled, or too late
      handler: async ({ ctx }) => {
        await s.deletion.restore(ctx);
        return s.orgs.get(ctx);
      },
    }),
    defineRoute({
      method: 'PATCH', url: '/api/orgs/:orgId', summary: 'Rename the organization', tags,
      auth: { mode: 'session' }, permission: 'org:update', rateLimit: 'authenticated', audit: { action: 'org.updated' },
      schema: { params: orgParams, body: z.strictObject({ name: userText(100) }), response: orgView }, errors: orgPolicy,
      example: () => ({ name: 'Renamed' }),
      handler: ({ ctx, body }) => s.orgs.rename(ctx, body.name),
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/settings', summary: 'Read security settings', tags,
      auth: { mode: 'session' }, permission: 'settings:read', rateLimit: 'authenticated', audit: { none: 'read' }, ownerRecovery: true,
      // step_up_required also for an owner outside the admin IP allowlist (ownerRecovery).
      schema: { params: orgParams, response: orgSettingsView }, errors: orgPolicy,
      handler: ({ ctx }) => s.orgs.getSettings(ctx),
    }),
    defineRoute({
      method: 'PATCH', url: '/api/orgs/:orgId/settings', summary: 'Change security settings (session lengths, MFA requirement, admin IP allowlist, browser origins for publishable keys)', tags,
      auth: { mode: 'session' }, permission: 'settings:write', rateLimit: 'authenticated', audit: { action: 'org.settings_updated' }, ownerRecovery: true,
      stepUp: true,
      schema: {
        params: orgParams,
        body: z.strictObject({
          sessionIdleMinutes: z.number().int().min(1).max(1440).nullable().optional(),
          sessionAbsoluteHours: z.number().int().min(1).max(720).nullable().optional(),
          mfaRequired: z.boolean().optional(),
          mfaGraceDays: z.number().int().min(0).max(90).optional(),
          adminIpAllowlist: z.array(z.string().max(64)).max(100).optional(),
          browserOrigins: z.array(z.string().max(300)).max(50).optional(),
          confirmLockout: z.boolean().optional(),
        }),
        response: orgSettingsView,
      },
      // privilege_escalation: the allowlist needs owners:manage; ip_not_allowed: an owner outside the
      // list changes only the list; conflict: a list without the caller's address and no confirmLockout.
      errors: ['privilege_escalation', 'ip_not_allowed', 'conflict'],
      example: () => ({ sessionIdleMinutes: 30 }),
      handler: ({ ctx, body }) => s.orgs.updateSettings(ctx, body),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/leave', summary: 'Leave the organization', tags,
      auth: { mode: 'session' }, permission: 'org:read', rateLimit: 'authenticated', audit: { action: 'member.left' },
      status: 204, schema: { params: orgParams }, errors: [...orgPolicy, 'last_owner'],
      handler: async ({ ctx }) => s.members.leave(ctx),
    }),

    // Members
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/members', summary: 'List members', tags: ['members'],
      auth: { mode: 'session' }, api: true, permission: 'members:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: memberList }, errors: orgPolicy,
      handler: async ({ ctx }) => ({ members: await s.members.list(ctx) }),
    }),
    defineRoute({
      method: 'PATCH', url: '/api/orgs/:orgId/members/:userId', summary: 'Change a member\u2019s role or restriction', tags: ['members'],
      auth: { mode: 'session' }, permission: 'members:update', rateLimit: 'authenticated', audit: { action: 'member.role_changed' }, stepUp: true, ownerRecovery: true,
      status: 204, schema: { params: memberParams, body: assignment }, errors: ['privilege_escalation', 'last_owner'],
      example: () => ({ role: 'viewer' }),
      handler: async ({ ctx, params, body }) => s.members.changeRole(ctx, params.userId, body),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId/members/:userId', summary: 'Remove a member', tags: ['members'],
      auth: { mode: 'session' }, permission: 'members:remove', rateLimit: 'authenticated', audit: { action: 'member.removed' }, ownerRecovery: true,
      status: 204, schema: { params: memberParams }, errors: [...orgPolicy, 'privilege_escalation', 'last_owner'],
      handler: async ({ ctx, params }) => s.members.remove(ctx, params.userId),
    }),

    // Invitations
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/members/:userId/personal-data',
      summary: 'Export everything the organization holds about a member (a data-subject access request): profile, membership, keys, identities, invitations and the audit events naming them, opened',
      tags: ['members'], auth: { mode: 'session' }, permission: 'privacy:manage', stepUp: true, rateLimit: 'authenticated', audit: { action: 'member.data_exported' },
      schema: { params: memberParams, response: subjectExportView },
      errors: [...orgPolicy, 'privilege_escalation'], // a member with permissions the caller lacks
      handler: ({ ctx, params }) => s.subjects.exportOf(ctx, params.userId),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/members/:userId/erase',
      summary: 'Erase a member (a data-subject erasure request): membership, their API keys, SSO identities and invitations go, the personal parts of the audit events naming them are destroyed ' +
        '(the chain still verifies; the user id stays as a pseudonym), and their account is deleted when no other organization holds them',
      tags: ['members'], auth: { mode: 'session' }, permission: 'privacy:manage', stepUp: true, rateLimit: 'authenticated', audit: { action: 'member.erased' },
      schema: {
        params: memberParams,
        body: z.strictObject({ confirm: email.meta({ description: 'The member\u2019s email address, typed' }) }),
        response: erasureView,
      },
      errors: [...orgPolicy, 'privilege_escalation', 'conflict'], // conflict: an owner (demote them first)
      example: () => ({ confirm: 'member@example.com' }),
      handler: ({ ctx, params, body }) => s.subjects.erase(ctx, params.userId, body.confirm),
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/invitations', summary: 'List invitations', tags: ['members'],
      auth: { mode: 'session' }, permission: 'members:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: invitationList }, errors: orgPolicy,
      handler: async ({ ctx }) => ({ invitations: await s.invitations.list(ctx) }),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/invitations', summary: 'Invite someone (role no higher than your own)', tags: ['members'],
      auth: { mode: 'session' }, permission: 'members:invite', rateLimit: 'authenticated', audit: { action: 'invitation.created' }, stepUp: true,
      status: 201,
      schema: { params: orgParams, body: assignment.extend({ email, projectIds: z.array(uuid).max(100).optional() }), response: createdInvitation },
      // conflict: the address is a member's, or has a pending invitation.
      errors: ['privilege_escalation', 'conflict'],
      example: () => ({ email: `invitee-${Math.random().toString(36).slice(2, 10)}@example.test`, role: 'viewer' }),
      handler: ({ ctx, body }) => s.invitations.create(ctx, body),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId/invitations/:invitationId', summary: 'Revoke an invitation', tags: ['members'],
      auth: { mode: 'session' }, permission: 'members:invite', rateLimit: 'authenticated', audit: { action: 'invitation.revoked' }, ownerRecovery: true,
      status: 204, schema: { params: z.strictObject({ orgId: uuid, invitationId: uuid }) }, errors: [...orgPolicy, 'privilege_escalation'],
      handler: async ({ ctx, params }) => s.invitations.revoke(ctx, params.invitationId),
    }),
    defineRoute({
      method: 'POST', url: '/api/invitations/accept', summary: 'Accept an invitation addressed to your email', tags: ['members'],
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'invitation-accept', audit: { action: 'invitation.accepted' },
      schema: { body: z.strictObject({ token: z.string().min(1).max(200) }), response: acceptedInvitation },
      // token_invalid: malformed, unknown, spent, expired, for another address, or the inviter can no
      // longer grant it; email_unverified: the account has not proven its mailbox; conflict: already a member.
      // sso_required: the account's domain is under SSO enforcement and this session is not the org's SSO.
      errors: ['token_invalid', 'email_unverified', 'conflict', 'sso_required'],
      example: () => ({ token: 'pal_inv_invalid' }),
      handler: ({ ctx, body }) => s.invitations.accept(ctx, body.token),
    }),

    // Roles
    defineRoute({
      method: 'GET', url: '/api/permissions', summary: 'The permission catalogue: what each permission means and reaches, and the built-in roles',
      tags: ['roles'], auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { none: 'read' },
      // The same for every caller (the kernel's lists); the console derives its role editor, key forms and hints from it.
      schema: { response: permissionCatalogue }, errors: [],
      handler: async () => catalogue(),
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/roles', summary: 'List built-in and custom roles', tags: ['roles'],
      auth: { mode: 'session' }, permission: 'roles:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: roleList }, errors: orgPolicy,
      handler: async ({ ctx }) => ({ roles: await s.roles.list(ctx) }),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/roles', summary: 'Create a custom role from the permission catalogue', tags: ['roles'],
      auth: { mode: 'session' }, permission: 'roles:write', rateLimit: 'authenticated', audit: { action: 'role.created' }, stepUp: true,
      status: 201,
      schema: {
        params: orgParams,
        body: z.strictObject({ name: userText(60), description: userText(500, { allowEmpty: true }).optional(), permissions: z.array(permission).min(1).max(64) }),
        response: roleView,
      },
      errors: ['privilege_escalation', 'conflict'], // conflict: the name is taken
      example: () => ({ name: `role-${Math.random().toString(36).slice(2, 10)}`, permissions: ['projects:read'] }),
      handler: ({ ctx, body }) => s.roles.create(ctx, body),
    }),
    defineRoute({
      method: 'PATCH', url: '/api/orgs/:orgId/roles/:roleId', summary: 'Change a custom role', tags: ['roles'],
      auth: { mode: 'session' }, permission: 'roles:write', rateLimit: 'authenticated', audit: { action: 'role.updated' }, stepUp: true,
      schema: {
        params: z.strictObject({ orgId: uuid, roleId: uuid }),
        body: z.strictObject({ name: userText(60).optional(), description: userText(500, { allowEmpty: true }).optional(), permissions: z.array(permission).min(1).max(64).optional() }),
        response: roleView,
      },
      // conflict: the name is taken, or org-wide permissions for a role that restricted members hold.
      errors: ['privilege_escalation', 'conflict'],
      example: () => ({ description: 'changed' }),
      handler: ({ ctx, params, body }) => s.roles.update(ctx, params.roleId, body),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId/roles/:roleId', summary: 'Delete an unused custom role', tags: ['roles'],
      auth: { mode: 'session' }, permission: 'roles:write', rateLimit: 'authenticated', audit: { action: 'role.deleted' }, stepUp: true,
      status: 204, schema: { params: z.strictObject({ orgId: uuid, roleId: uuid }) },
      errors: ['privilege_escalation', 'conflict'], // conflict: the role is assigned to members
      handler: async ({ ctx, params }) => s.roles.remove(ctx, params.roleId),
    }),

    // Projects
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/projects', summary: 'List projects (assigned ones when restricted)', tags: ['projects'],
      auth: { mode: 'session' }, api: true, permission: 'projects:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: orgParams, response: projectList }, errors: orgPolicy,
      handler: async ({ ctx }) => ({ projects: await s.projects.list(ctx) }),
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/projects', summary: 'Create a project', tags: ['projects'],
      auth: { mode: 'session' }, api: true, permission: 'projects:create', rateLimit: 'authenticated', audit: { action: 'project.created' },
      status: 201, schema: { params: orgParams, body: z.strictObject({ name: userText(100) }), response: projectView }, errors: orgPolicy,
      example: () => ({ name: 'New project' }),
      handler: ({ ctx, body }) => s.projects.create(ctx, body.name),
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/projects/:projectId', summary: 'Read a project', tags: ['projects'],
      auth: { mode: 'session' }, api: true, permission: 'projects:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: projectParams, response: projectView }, errors: orgPolicy,
      handler: ({ ctx, params }) => s.projects.get(ctx, params.projectId),
    }),
    defineRoute({
      method: 'PATCH', url: '/api/orgs/:orgId/projects/:projectId', summary: 'Rename a project', tags: ['projects'],
      auth: { mode: 'session' }, api: true, permission: 'projects:update', rateLimit: 'authenticated', audit: { action: 'project.updated' },
      schema: { params: projectParams, body: z.strictObject({ name: userText(100) }), response: projectView }, errors: orgPolicy,
      example: () => ({ name: 'Renamed project' }),
      handler: ({ ctx, params, body }) => s.projects.rename(ctx, params.projectId, body.name),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId/projects/:projectId', summary: 'Delete a project and its assets', tags: ['projects'],
      auth: { mode: 'session' }, api: true, permission: 'projects:delete', rateLimit: 'authenticated', audit: { action: 'project.deleted' },
      status: 204, schema: { params: projectParams }, errors: orgPolicy,
      handler: async ({ ctx, params }) => s.projects.remove(ctx, params.projectId),
    }),
    defineRoute({
      method: 'GET', url: '/api/orgs/:orgId/projects/:projectId/members', summary: 'List members assigned to a project', tags: ['projects'],
      auth: { mode: 'session' }, permission: 'members:read', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { params: projectParams, response: projectMemberList }, errors: orgPolicy,
      handler: async ({ ctx, params }) => ({ members: await s.projects.listAccess(ctx, params.projectId) }),
    }),
    defineRoute({
      method: 'PUT', url: '/api/orgs/:orgId/projects/:projectId/members/:userId', summary: 'Assign a restricted member to a project',
      tags: ['projects'], auth: { mode: 'session' }, permission: 'projects:assign', rateLimit: 'authenticated',
      audit: { action: 'project.member_assigned' }, status: 204, stepUp: true,
      schema: { params: z.strictObject({ orgId: uuid, projectId: uuid, userId: uuid }) },
      errors: ['privilege_escalation', 'conflict'], // conflict: the member is not restricted to projects
      handler: async ({ ctx, params }) => s.projects.assign(ctx, params.projectId, params.userId),
    }),
    defineRoute({
      method: 'DELETE', url: '/api/orgs/:orgId/projects/:projectId/members/:userId', summary: 'Remove a member from a project',
      tags: ['projects'], auth: { mode: 'session' }, permission: 'projects:assign', rateLimit: 'authenticated',
      audit: { action: 'project.member_unassigned' }, status: 204,
      schema: { params: z.strictObject({ orgId: uuid, projectId: uuid, userId: uuid }) }, errors: [...orgPolicy, 'privilege_escalation'],
      handler: async ({ ctx, params }) => s.projects.unassign(ctx, params.projectId, params.userId),
    }),
  ];
}
