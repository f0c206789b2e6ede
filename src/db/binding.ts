import type { OrgAccess, RequestContext } from '../kernel/context.js';
import { InvariantError } from '../kernel/errors.js';
import type { TenantBinding } from './database.js';

/** The transaction binding of an org-scoped request: its org, its user, and its project scope. */
export function bindingOf(ctx: RequestContext): TenantBinding {
  const org = requireOrg(ctx);
  return {
    orgId: org.orgId,
    userId: ctx.actor.type === 'user' ? ctx.actor.userId : null,
    projectIds: org.projectIds,
  };
}

export function requireOrg(ctx: RequestContext): OrgAccess {
  if (!ctx.org) throw new InvariantError('org-scoped work without resolved org access');
  return ctx.org;
}
