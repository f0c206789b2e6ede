import type { Permission, PermissionSet } from './permissions.js';

/** Who is calling. Capabilities are never stored here beyond one request. */
export type Actor =
  | { type: 'anonymous' }
  | { type: 'user'; userId: string; sessionId: string; email: string };

/** The caller's standing in the organization addressed by the request, derived per request. */
export interface OrgAccess {
  orgId: string;
  role: string;
  /** Display name of a custom role, or the built-in role key. */
  roleLabel: string;
  permissions: PermissionSet;
  /** null: every project; otherwise exactly these project ids. */
  projectIds: readonly string[] | null;
}

export interface RequestContext {
  requestId: string;
  ip: string;
  userAgent: string;
  actor: Actor;
  org: OrgAccess | null;
}

export type { Permission };
