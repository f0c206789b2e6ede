import { z } from 'zod';
import { groupRoles, type GroupRole } from './role-mapping.js';

/**
 * What a connection's sign-ins may do beyond proving who someone is: create accounts and
 * memberships (just-in-time provisioning) and count the IdP's own multi-factor sign-in as
 * Palisade's second factor. Stored in the connection's settings; both off by default.
 */
export const JIT_ROLES = ['member', 'viewer', 'project_viewer'] as const;

export const signInPolicy = z.object({
  jitRole: z.enum(JIT_ROLES).nullable().meta({
    description: 'Members the connection creates at their first sign-in get this role; null: nobody is created (accounts must exist and be linked)',
  }),
  trustIdpMfa: z.boolean().meta({
    description: 'The IdP enforces MFA: its sign-ins count as a second factor. False: an account with a second factor of its own gives it after the IdP',
  }),
  groupRoles,
});
export type SignInPolicy = z.infer<typeof signInPolicy>;

export const DEFAULT_SIGN_IN_POLICY: SignInPolicy = { jitRole: null, trustIdpMfa: false, groupRoles: [] };

/** The policy stored in a connection's settings (older rows have none: the defaults). */
export function policyOf(settings: { signIn?: Partial<SignInPolicy> | undefined }): SignInPolicy {
  return { ...DEFAULT_SIGN_IN_POLICY, ...(settings.signIn ?? {}) };
}

/** The fields of a create or change request that set the policy; absent ones keep their value. */
export interface PolicyChange {
  jitRole?: SignInPolicy['jitRole'] | undefined;
  trustIdpMfa?: boolean | undefined;
  groupRoles?: GroupRole[] | undefined;
}

export function mergePolicy(current: SignInPolicy, change: PolicyChange): SignInPolicy {
  return {
    jitRole: change.jitRole !== undefined ? change.jitRole : current.jitRole,
    trustIdpMfa: change.trustIdpMfa ?? current.trustIdpMfa,
    groupRoles: change.groupRoles ?? current.groupRoles,
  };
}

/** The policy fields a request set, for the audit trail (group names are the admin's, not secrets). */
export function policyChangeDetails(change: PolicyChange): { jitRole?: string | null; trustIdpMfa?: boolean; groupRoles?: string[] } {
  return {
    ...(change.jitRole !== undefined ? { jitRole: change.jitRole } : {}),
    ...(change.trustIdpMfa !== undefined ? { trustIdpMfa: change.trustIdpMfa } : {}),
    ...(change.groupRoles !== undefined ? { groupRoles: change.groupRoles.map((r) => `${r.group} \u2192 ${r.role}${r.projectIds ? ` (${r.projectIds.join(', ')})` : ''}`) } : {}),
  };
}
