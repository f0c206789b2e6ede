import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';
import { ALL_PERMISSIONS, BUILTIN_ROLES, type Permission } from '../../kernel/permissions.js';

/**
 * What the tenancy routes answer. The services' view types are derived from these schemas
 * (one definition); the reply is serialized through them, so a column nobody named here (an
 * invitation's token hash) never leaves.
 */

/** A built-in role, or `custom` (then `customRoleId` names the custom role). */
export const roleKey = z.enum([...BUILTIN_ROLES, 'custom']);

export const permission = z.enum(ALL_PERMISSIONS as [Permission, ...Permission[]]);

export const orgView = z.object({
  id: uuid,
  slug: z.string(),
  name: z.string(),
  createdAt: timestamp,
  deletion: z.object({
    requestedAt: timestamp,
    purgeAfter: timestamp.meta({ description: 'When its data keys are destroyed; until then an owner can restore it' }),
  }).nullable().meta({ description: 'Set while the organization is scheduled for deletion' }),
});
export type OrgView = z.infer<typeof orgView>;

export const orgSettingsView = z.object({
  sessionIdleMinutes: z.number().nullable().meta({ description: 'The org\u2019s idle timeout; null for the deployment\u2019s' }),
  sessionAbsoluteHours: z.number().nullable().meta({ description: 'The org\u2019s absolute session length; null for the deployment\u2019s' }),
  mfaRequired: z.boolean(),
  mfaEnforcedFrom: timestamp.nullable().meta({ description: 'Members without a second factor lose access from this instant (requirement + grace)' }),
  adminIpAllowlist: z.array(z.string()).meta({ description: 'Addresses and CIDR ranges admin-level work is allowed from; empty for anywhere' }),
  browserOrigins: z.array(z.string()).meta({ description: 'Pages (origins) allowed to call the API with the org\u2019s publishable keys' }),
});
export type OrgSettingsView = z.infer<typeof orgSettingsView>;

export const memberView = z.object({
  userId: uuid,
  email: z.string(),
  name: z.string(),
  role: roleKey,
  customRoleId: uuid.nullable(),
  restricted: z.boolean().meta({ description: 'Restricted to the projects in projectIds (always for project_viewer)' }),
  projectIds: z.array(uuid).meta({ description: 'Projects the member is assigned to (those the reader can see)' }),
  joinedAt: timestamp,
});
export type MemberView = z.infer<typeof memberView>;

export const memberList = z.object({ members: z.array(memberView) });

export const invitationView = z.object({
  id: uuid,
  email: z.string(),
  role: roleKey,
  customRoleId: uuid.nullable(),
  restricted: z.boolean(),
  projectIds: z.array(uuid).meta({ description: 'Projects a restricted invitee gets (those the reader can see)' }),
  invitedBy: uuid,
  createdAt: timestamp,
  expiresAt: timestamp,
  status: z.enum(['pending', 'accepted', 'revoked', 'expired']),
});
export type InvitationView = z.infer<typeof invitationView>;

export const invitationList = z.object({ invitations: z.array(invitationView) });

/** A new invitation and its token: the only answer that holds the token (it is stored as a hash). */
export const createdInvitation = z.object({
  invitation: invitationView,
  token: z.string().meta({ description: 'pal_inv_…: also mailed to the invitee; shown in this answer only' }),
});
export type CreatedInvitation = z.infer<typeof createdInvitation>;

export const acceptedInvitation = z.object({ orgId: uuid.meta({ description: 'The organization joined' }) });
export type AcceptedInvitation = z.infer<typeof acceptedInvitation>;

export const roleView = z.object({
  id: z.string().meta({ description: 'A custom role\u2019s UUID, or the name of a built-in role' }),
  name: z.string(),
  description: z.string(),
  builtin: z.boolean(),
  permissions: z.array(permission),
});
export type RoleView = z.infer<typeof roleView>;

export const roleList = z.object({ roles: z.array(roleView) });

/**
 * The permission catalogue as the server enforces it (GET /api/permissions, kernel/permissions.ts):
 * the console derives its role editor, key forms and hints from it instead of copying the lists.
 */
export const permissionCatalogue = z.object({
  permissions: z.array(z.object({
    name: permission,
    description: z.string(),
    orgWide: z.boolean().meta({ description: 'Reaches beyond the projects a member is assigned to: a member restricted to projects never holds it' }),
    apiKey: z.boolean().meta({ description: 'A secret API key may carry it' }),
    browserSafe: z.boolean().meta({ description: 'A publishable (browser) key may carry it' }),
    projectKey: z.boolean().meta({ description: 'A key bound to one project may carry it' }),
    ownerOnly: z.boolean().meta({ description: 'Only the owner role holds it among the built-in roles (admins do not)' }),
  })).meta({ description: 'In catalogue order' }),
  builtinRoles: z.array(z.object({ name: z.string(), permissions: z.array(permission) })).meta({ description: 'Most to least' }),
});
export type PermissionCatalogue = z.infer<typeof permissionCatalogue>;

export const projectView = z.object({
  id: uuid,
  name: z.string(),
  createdAt: timestamp,
});
export type ProjectView = z.infer<typeof projectView>;

export const projectList = z.object({ projects: z.array(projectView) });

/** A member assigned to a project. */
export const projectMemberView = z.object({ userId: uuid, email: z.string() });
export type ProjectMemberView = z.infer<typeof projectMemberView>;

export const projectMemberList = z.object({ members: z.array(projectMemberView) });

const at = timestamp.nullable();

/** Everything the org holds about one member (a data-subject access request). */
export const subjectExportView = z.object({
  exportedAt: timestamp,
  org: z.object({ id: uuid }),
  user: z.object({ id: uuid, email: z.string(), name: z.string(), createdAt: timestamp, emailVerifiedAt: at }),
  membership: z.object({
    role: roleKey,
    customRole: z.object({ id: uuid, name: z.string() }).nullable(),
    restricted: z.boolean(),
    joinedAt: timestamp,
    projects: z.array(z.object({ id: uuid, name: z.string() })),
  }),
  apiKeys: z.array(z.object({ id: uuid, name: z.string(), createdAt: timestamp, expiresAt: at, lastUsedAt: at, revokedAt: at }))
    .meta({ description: 'Keys the member created in this org (metadata; secrets are kept only as hashes)' }),
  ssoIdentities: z.array(z.object({ issuer: z.string(), subject: z.string(), email: z.string(), linkedAt: timestamp, lastSignInAt: at })),
  invitations: z.array(z.object({ id: uuid, role: z.string(), createdAt: timestamp, expiresAt: timestamp, acceptedAt: at, revokedAt: at })),
  auditEvents: z.array(z.object({
    seq: z.number(), id: uuid, at: timestamp, action: z.string(), result: z.string(),
    actor: z.object({ type: z.string(), id: z.string().nullable() }),
    target: z.object({ type: z.string(), id: z.string() }).nullable(),
    ip: z.string(), userAgent: z.string(), details: z.record(z.string(), z.unknown()),
  })).meta({ description: 'Events of this org\u2019s trail the member acted in, was the target of, or is named in, opened' }),
  notIncluded: z.array(z.string()).meta({ description: 'What the export leaves out, and why' }),
});
export type SubjectExportView = z.infer<typeof subjectExportView>;

/** What erasing a member removed, and what became of their account. */
export const erasureView = z.object({
  account: z.enum(['deleted', 'kept']).meta({
    description: 'deleted: the person belonged to no other organization, and their account (sessions, factors, passkeys, linked identities) is gone; ' +
      'kept: other organizations still hold them, so only this organization\u2019s records were erased',
  }),
  auditEventsErased: z.number().meta({ description: 'Audit events whose sealed personal part (details, address, user agent) was destroyed; their chain still verifies' }),
  apiKeysRevoked: z.number(),
  ssoIdentitiesRemoved: z.number(),
  invitationsRemoved: z.number(),
});
export type ErasureView = z.infer<typeof erasureView>;
