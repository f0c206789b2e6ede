/**
 * The typed permission catalogue. Built-in roles and custom roles are sets of these names;
 * routes declare one of them. Adding a permission here is the only way to create one.
 */
export const PERMISSIONS = {
  'org:read': 'See the organization and its settings summary',
  'org:update': 'Rename the organization',
  'org:delete': 'Delete the organization',
  'org:export': 'Export every row the organization owns (a signed archive) and download it',
  'settings:read': 'Read security settings (session lengths, policies)',
  'settings:write': 'Change security settings',
  'members:read': 'List members and invitations',
  'members:invite': 'Invite members and revoke invitations',
  'members:update': 'Change members\u2019 roles and project restriction',
  'members:remove': 'Remove members',
  'owners:manage': 'Grant, change or remove the owner role',
  'sessions:revoke': 'Revoke another member\u2019s sessions',
  'roles:read': 'List roles and the permission catalogue',
  'roles:write': 'Create, change and delete custom roles',
  'projects:read': 'See projects (assigned ones only when restricted)',
  'projects:create': 'Create projects',
  'projects:update': 'Rename projects',
  'projects:delete': 'Delete projects',
  'projects:assign': 'Assign restricted members to projects',
  'assets:read': 'Read assets inside projects',
  'assets:write': 'Create and delete assets inside projects',
  'files:read': 'List and download the files of projects',
  'files:write': 'Upload files to projects (scanned and checked) and delete them',
  'audit:read': 'Read the organization\u2019s audit trail',
  'audit:stream': 'Stream the organization\u2019s audit trail to its SIEM (HTTPS or syslog destinations, their secrets and status)',
  'keys:own': 'Create API keys within your own permissions; list and revoke your own',
  'keys:manage': 'List and revoke every API key of the organization',
  'webhooks:manage': 'Manage webhook endpoints, deliveries and inbound webhook sources',
  'sso:manage': 'Claim and verify email domains; manage single sign-on connections and their enforcement',
  'credentials:read': 'See integration credentials\u2019 metadata, rotation history and use log (never their values)',
  'credentials:manage': 'Add, replace and delete integration credentials (write-only: their values are never shown)',
  'billing:manage': 'Manage plan and billing',
  'data_keys:rotate': 'Rotate the organization\u2019s data key (re-encrypting its sealed values) and roll a rotation back',
  'privacy:manage': 'Answer data-subject requests: export everything the organization holds about a member, or erase it',
} as const;

export type Permission = keyof typeof PERMISSIONS;

export const ALL_PERMISSIONS = Object.keys(PERMISSIONS) as Permission[];

export function isPermission(value: unknown): value is Permission {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(PERMISSIONS, value);
}

export const BUILTIN_ROLES = ['owner', 'admin', 'member', 'viewer', 'project_viewer'] as const;
export type BuiltinRole = (typeof BUILTIN_ROLES)[number];

export function isBuiltinRole(value: unknown): value is BuiltinRole {
  return typeof value === 'string' && (BUILTIN_ROLES as readonly string[]).includes(value);
}

const OWNER_ONLY: Permission[] = ['org:delete', 'org:export', 'owners:manage', 'billing:manage', 'data_keys:rotate', 'privacy:manage'];

// Not credentials:read: it is org-wide (ORG_WIDE_PERMISSIONS), and a built-in role holding an
// org-wide permission could no longer be given to a member restricted to projects. Owners and
// admins hold both credential permissions; a custom role may grant the read alone.
const READ_ONLY: Permission[] = ['org:read', 'members:read', 'roles:read', 'projects:read', 'assets:read', 'files:read'];

export const BUILTIN_ROLE_PERMISSIONS: Record<BuiltinRole, readonly Permission[]> = {
  owner: ALL_PERMISSIONS,
  admin: ALL_PERMISSIONS.filter((p) => !OWNER_ONLY.includes(p)),
  member: [...READ_ONLY, 'assets:write', 'files:write', 'keys:own'],
  viewer: READ_ONLY,
  project_viewer: ['org:read', 'projects:read', 'assets:read', 'files:read'],
};

/**
 * Admin-level permissions: every one the built-in member role lacks. An org's admin IP
 * allowlist applies to routes that need one of them.
 */
export const ADMIN_LEVEL_PERMISSIONS: readonly Permission[] = ALL_PERMISSIONS.filter((p) => !BUILTIN_ROLE_PERMISSIONS.member.includes(p));

export function isAdminLevel(p: string): boolean {
  return (ADMIN_LEVEL_PERMISSIONS as readonly string[]).includes(p);
}

/**
 * What an API key may carry: the permissions of the routes served to keys (`/v1`). Managing
 * members, roles, settings, keys and webhooks stays with people, behind a session and step-up.
 */
export const API_KEY_PERMISSIONS: readonly Permission[] = [
  'org:read', 'members:read', 'projects:read', 'projects:create', 'projects:update', 'projects:delete',
  'assets:read', 'assets:write', 'files:read', 'files:write', 'audit:read',
];

/**
 * What a publishable key (shipped to browsers, so public) may carry: reads of data an org
 * chooses to show on its own pages. Nothing that writes, nothing about people or the audit trail.
 */
export const BROWSER_SAFE_PERMISSIONS: readonly Permission[] = ['org:read', 'projects:read', 'assets:read'];

/**
 * What a key bound to one project may carry: work inside that project. Org-wide reads (members,
 * the audit trail) and creating or deleting projects reach beyond it.
 */
export const PROJECT_KEY_PERMISSIONS: readonly Permission[] = ['org:read', 'projects:read', 'projects:update', 'assets:read', 'assets:write', 'files:read', 'files:write'];

/** Roles whose holders only ever see the projects they are assigned to. */
export const ALWAYS_RESTRICTED_ROLES: readonly BuiltinRole[] = ['project_viewer'];

/**
 * Permissions that reach beyond the projects a member is assigned to: what they open is the
 * org itself, or a channel that carries every project's data. A member restricted to projects
 * (the `restricted` flag, or an always-restricted role) never holds one (review R4 finding 4):
 * assigning such a role to a restricted member, restricting its holder, or adding one to a
 * custom role a restricted member holds is refused, and request-time resolution drops any that
 * older data still grants. A new permission, or a new route or channel behind an existing one
 * (exports, reports, ...), is classified here: org-wide unless every row it reads or writes is
 * confined to the caller's projects (pipeline `:projectId` check, RLS project scope, or a
 * service filter on `OrgAccess.projectIds`).
 *
 * Org-wide, and why:
 * - org:update, org:delete: rename or delete the org every project belongs to.
 * - org:export: the archive holds every row of every project (and the whole audit trail).
 * - settings:read, settings:write: the org's security policy (session lengths, MFA requirement,
 *   admin IP allowlist, browser origins): org configuration, no project of its own.
 * - owners:manage: ownership of the org (owners are never restricted).
 * - roles:write: a custom role is org configuration any admin may assign to anyone; editing one
 *   changes the rights of its unrestricted holders too.
 * - projects:create: a new project is outside the creator's assignment (RLS refuses the insert).
 * - audit:read: the trail carries every project's events (names, assets, members).
 * - audit:stream: a stream sends the whole trail (every project's events) to a destination
 *   its holder chooses.
 * - keys:manage: every member's API keys (the service already confined a restricted holder to
 *   their own, which is keys:own: holding it restricted only misled).
 * - webhooks:manage: endpoints subscribe to event types org-wide (the outbox filters by org and
 *   type, not project), inbound sources feed the org, and the delivery log shows every payload.
 * - billing:manage: the org's plan.
 * - credentials:read, credentials:manage: an integration credential serves the whole org (a PSA
 *   or RMM account syncs every customer), and its use log reports on all of them.
 * - data_keys:rotate: the key every sealed value of the org is encrypted with.
 * - privacy:manage: a member's export reads the whole trail for events naming them, and their
 *   erasure destroys personal parts of events of every project.
 *
 * Not org-wide (a restricted member may hold them), and why:
 * - org:read: the org's name; every membership carries it.
 * - members:read: a restricted reader sees only the members and invitations that reach one of
 *   their projects (unrestricted members, who reach every project, and members assigned to one
 *   of theirs), with assignments inside their scope only (tenancy/members.ts, invitations.ts).
 * - members:invite, members:update, members:remove, sessions:revoke, projects:assign: a
 *   restricted actor grants only restricted access to their own projects (assertCanScope) and
 *   acts only on members restricted within them (assertCanActOn).
 * - roles:read: the role catalogue (names and permission lists): it names no member, project or
 *   event, and whoever assigns roles within a project needs it.
 * - projects:read, projects:update, projects:delete, assets:read, assets:write, files:read,
 *   files:write: the pipeline refuses unassigned `:projectId`s and RLS binds the scope; what a
 *   deletion removes lies inside the project. (An upload counts against the org's quota: what
 *   it reveals of other projects is the quota's remaining bytes, a number.)
 * - keys:own: a key acts within its creator's current permissions and project scope.
 */
export const ORG_WIDE_PERMISSIONS: readonly Permission[] = [
  'org:update', 'org:delete', 'org:export', 'settings:read', 'settings:write', 'owners:manage', 'roles:write', 'projects:create',
  'audit:read', 'audit:stream', 'keys:manage', 'webhooks:manage', 'sso:manage', 'billing:manage', 'credentials:read', 'credentials:manage', 'data_keys:rotate',
  'privacy:manage',
];

export function isOrgWide(p: string): boolean {
  return (ORG_WIDE_PERMISSIONS as readonly string[]).includes(p);
}

/**
 * Permissions held as a bit set: the check on every request is one AND, which is what makes
 * millions of checks a second possible without a cache that could go stale.
 */
const BIT: Record<Permission, bigint> = Object.fromEntries(
  ALL_PERMISSIONS.map((p, i) => [p, 1n << BigInt(i)]),
) as Record<Permission, bigint>;

export class PermissionSet {
  private constructor(private readonly bits: bigint) {}

  static of(perms: Iterable<string>): PermissionSet {
    let bits = 0n;
    for (const p of perms) if (isPermission(p)) bits |= BIT[p];
    return new PermissionSet(bits);
  }

  static readonly empty = new PermissionSet(0n);

  has(p: Permission): boolean {
    return (this.bits & BIT[p]) !== 0n;
  }

  /** True when every permission of `other` is in this set. */
  covers(other: PermissionSet): boolean {
    return (other.bits & ~this.bits) === 0n;
  }

  intersect(other: PermissionSet): PermissionSet {
    return new PermissionSet(this.bits & other.bits);
  }

  list(): Permission[] {
    return ALL_PERMISSIONS.filter((p) => this.has(p));
  }
}

const MEMBER_LEVEL = PermissionSet.of(BUILTIN_ROLE_PERMISSIONS.member);

/** `set` without its admin-level permissions: what a caller holds from outside the org's admin IP allowlist. */
export function withoutAdminLevel(set: PermissionSet): PermissionSet {
  return set.intersect(MEMBER_LEVEL);
}

const NOT_ORG_WIDE = PermissionSet.of(ALL_PERMISSIONS.filter((p) => !isOrgWide(p)));

/** What a member restricted to projects holds of `set`: everything but the org-wide permissions. */
export function withoutOrgWide(set: PermissionSet): PermissionSet {
  return set.intersect(NOT_ORG_WIDE);
}

/** The org-wide permissions in `set`, to name them in a refusal. */
export function orgWideIn(set: PermissionSet): Permission[] {
  return set.list().filter(isOrgWide);
}

/**
 * What a custom role holds beyond what it was given: org:read always, and audit:read with
 * audit:stream, which sends the whole trail to a destination its holder chooses (without it, a
 * role could read the trail through its own SIEM while the trail itself is refused to it).
 */
export function withImplied(permissions: readonly string[]): PermissionSet {
  const set = PermissionSet.of([...permissions, 'org:read']);
  return set.has('audit:stream') ? PermissionSet.of([...set.list(), 'audit:read']) : set;
}

/** A custom role stored before withImplied: audit:stream without audit:read is not held. */
export function withoutUnbacked(set: PermissionSet): PermissionSet {
  return set.has('audit:stream') && !set.has('audit:read') ? PermissionSet.of(set.list().filter((p) => p !== 'audit:stream')) : set;
}
