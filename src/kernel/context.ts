import { AppError } from './errors.js';
import type { Permission, PermissionSet } from './permissions.js';

/** Who is calling. Capabilities are never stored here beyond one request. */
export interface SessionInfo {
  id: string;
  createdAt: Date;
  lastSeenAt: Date;
  /** Longest gap between two uses of the session so far, this request included (org idle policies). */
  longestIdleSeconds?: number;
  /** Established (or since confirmed) with a second factor. */
  mfaVerified?: boolean;
  /** The last fresh proof of identity, for step-up ("sudo") routes. */
  steppedUpAt?: Date | null;
  /** The account has a second factor (then only a second factor counts as a step-up). */
  mfaEnabled?: boolean;
}

export type Actor =
  | { type: 'anonymous' }
  | { type: 'user'; userId: string; session: SessionInfo }
  /**
   * An API key of one org. It acts with its scopes intersected with its creator's current
   * permissions; the audit trail names the key, not the creator.
   */
  | { type: 'api_key'; keyId: string; kind: ApiKeyKind; createdBy: string }
  /** Operator tools (CLI) and background jobs. */
  | { type: 'system'; name: string };

export type ApiKeyKind = 'secret' | 'publishable';

export type UserActor = Extract<Actor, { type: 'user' }>;

/** The caller's standing in the organization addressed by the request, derived per request. */
export interface OrgAccess {
  orgId: string;
  role: string;
  /** Display name of a custom role, or the built-in role key. */
  roleLabel: string;
  permissions: PermissionSet;
  /** null: every project; otherwise exactly these project ids. */
  projectIds: readonly string[] | null;
  /** Addresses (CIDRs) admin-level requests must come from; empty: any. */
  adminIpAllowlist?: readonly string[];
  /** Set while the org is scheduled for deletion: when it will be shredded. Its routes then refuse, but for its status and the owner's restore. */
  purgeAfter?: Date | null;
}

export interface RequestContext {
  requestId: string;
  ip: string;
  userAgent: string;
  actor: Actor;
  org: OrgAccess | null;
  /** Audit actions appended for this request; the pipeline checks the route's declaration against it. */
  audited: string[];
}

export type { Permission };

/**
 * How long a fresh proof of identity (step-up, "sudo mode") counts for sensitive routes. Here so
 * that the pipeline that checks it and the sign-in service that grants it read one number.
 */
export const STEP_UP_SECONDS = 600;

/** The signed-in user of a request on a session route (the pipeline guarantees one; anything else is a 401). */
export function userActorOf(ctx: RequestContext): UserActor {
  if (ctx.actor.type !== 'user') throw new AppError('unauthenticated');
  return ctx.actor;
}

/** A context for work that no HTTP request started (CLI, jobs). */
export function systemContext(name: string): RequestContext {
  return { requestId: `system:${name}`, ip: '', userAgent: '', actor: { type: 'system', name }, org: null, audited: [] };
}
