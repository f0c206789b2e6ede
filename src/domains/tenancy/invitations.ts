import { sql } from 'kysely';
import { newId, randomToken, safeEqual, SealedValueError, sha256Hex, type FieldRef } from '../../crypto/index.js';
import { normalEmail, type Sealer } from '../keys/sealer.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { personOf, userWithEmail } from '../identity/people.js';
import { isUuid } from '../../kernel/ids.js';
import { exec, lockOrgCap, one, rows, type Tx } from '../../db/database.js';
import { accessFrom, assertCanGrant, assertCanScope, assertRestrictable, bindingOf, isRestricted, loadMembership, requireOrg, type RoleKey } from './access.js';
import type { TenancyDeps } from './deps.js';
import { grantedBy, type RoleAssignment } from './members.js';
import type { AcceptedInvitation, CreatedInvitation, InvitationView } from './responses.js';

export const INVITATION_TTL_MS = 7 * 24 * 3600 * 1000;

/** `pal_inv_<org>.<invitation>.<secret>`: the org and id route the lookup; only a hash of the secret is stored. */
function formatToken(orgId: string, id: string, secret: string): string {
  return `pal_inv_${orgId}.${id}.${secret}`;
}

function parseToken(token: string): { orgId: string; id: string; secret: string } | null {
  if (!token.startsWith('pal_inv_') || token.length > 200) return null;
  const parts = token.slice(8).split('.');
  if (parts.length !== 3) return null;
  const [orgId, id, secret] = parts as [string, string, string];
  if (!isUuid(orgId) || !isUuid(id) || !/^[A-Za-z0-9_-]{43}$/.test(secret)) return null;
  // Canonical form: the org id is hashed into the audit chain, which reads it back lower-cased.
  return { orgId: orgId.toLowerCase(), id: id.toLowerCase(), secret };
}

interface InvRow {
  id: string; email: string; email_sealed: string | null; role: RoleKey; custom_role_id: string | null; restricted: boolean; project_ids: string[];
  invited_by: string; created_at: Date; expires_at: Date; accepted_at: Date | null; revoked_at: Date | null;
}

/** Where an invitation's address is sealed: the org's data key, bound to the invitation. */
export const invitationEmailRef = (orgId: string, id: string): FieldRef => ({ scope: orgId, table: 'invitations', column: 'email_sealed', row: id });

/**
 * A condition on invitations (of the org bound) naming `address`: by the blind index, or in clear for one made
 * before addresses were sealed (migration 037).
 */
export async function invitedAddress(sealer: Sealer, tx: Tx, orgId: string, address: string) {
  const index = await sealer.emailIndex(tx, address, orgId);
  return sql<boolean>`(email_index = ${index} or (email_sealed is null and lower(email) = ${normalEmail(address)}))`;
}

/** Invitation rows with their address opened (one key read per data key). */
async function opened<R extends Pick<InvRow, 'id' | 'email' | 'email_sealed'>>(sealer: Sealer, tx: Tx, orgId: string, list: R[]): Promise<R[]> {
  const open = sealer.opener(tx);
  const out: R[] = [];
  for (const r of list) {
    if (!r.email_sealed) {
      out.push(r);
      continue;
    }
    let email = '';
    try {
      email = await open(invitationEmailRef(orgId, r.id), r.email_sealed);
    } catch (err) {
      if (!(err instanceof SealedValueError)) throw err; // a tampered or shredded value: no address
    }
    out.push({ ...r, email });
  }
  return out;
}

export function createInvitationService(deps: TenancyDeps) {
  const view = (r: InvRow): InvitationView => {
    const now = deps.clock.now();
    return {
      id: r.id,
      email: r.email,
      role: r.role,
      customRoleId: r.custom_role_id,
      restricted: r.restricted,
      projectIds: r.project_ids,
      invitedBy: r.invited_by,
      createdAt: r.created_at.toISOString(),
      expiresAt: r.expires_at.toISOString(),
      status: r.accepted_at ? 'accepted' : r.revoked_at ? 'revoked' : r.expires_at <= now ? 'expired' : 'pending',
    };
  };

  return {
    async create(
      ctx: RequestContext,
      input: RoleAssignment & { email: string; projectIds?: string[] | undefined },
    ): Promise<CreatedInvitation> {
      const org = requireOrg(ctx);
      if (ctx.actor.type !== 'user') throw new AppError('unauthenticated');
      const inviter = ctx.actor.userId;
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const granted = await grantedBy(tx, input);
        assertCanGrant(org, input.role, granted);
        const restricted = input.role !== 'owner' && isRestricted(input.role, input.restricted ?? false);
        assertRestrictable(granted, restricted);
        const projectIds = [...new Set(input.projectIds ?? [])];
        if (projectIds.length > 0) {
          if (!restricted) throw new AppError('validation_failed', 'projectIds are only for restricted members');
          const found = await rows<{ id: string }>(tx, sql`select id from projects where id = any(${projectIds}::uuid[])`);
          if (found.length !== projectIds.length) throw new AppError('not_found', 'no such project');
        }
        assertCanScope(org, { restricted, projectIds });
        // One live invitation per address, and none to a member: either could never be accepted
        // (README trial). Serialised per address, so two concurrent invitations cannot both pass.
        await lockOrgCap(tx, org.orgId, `invitation:${await deps.sealer.emailIndex(tx, input.email, org.orgId)}`);
        const member = await one(tx, sql`select 1 from memberships m join users u on u.id = m.user_id
                                         where m.org_id = ${org.orgId} and ${await userWithEmail(deps.sealer, tx, input.email, 'u')}`);
        if (member) throw new AppError('conflict', 'this address already belongs to a member of the organization');
        const pending = await one(tx, sql`select 1 from invitations where org_id = ${org.orgId} and ${await invitedAddress(deps.sealer, tx, org.orgId, input.email)}
                                          and accepted_at is null and revoked_at is null and expires_at > ${deps.clock.now().toISOString()}`);
        if (pending) throw new AppError('conflict', 'an invitation to this address is pending: revoke it first to send another');
        const id = newId();
        const secret = randomToken(32);
        const now = deps.clock.now();
        const expires = new Date(now.getTime() + INVITATION_TTL_MS);
        const sealed = await deps.sealer.seal(tx, invitationEmailRef(org.orgId, id), input.email);
        const index = await deps.sealer.emailIndex(tx, input.email, org.orgId);
        await exec(
          tx,
          sql`insert into invitations (org_id, id, email, email_sealed, email_index, role, custom_role_id, restricted, project_ids, token_hash, invited_by, created_at, expires_at)
              values (${org.orgId}, ${id}, '', ${sealed}, ${index}, ${input.role}, ${input.customRoleId ?? null}, ${restricted},
                      ${projectIds}::uuid[], ${sha256Hex(secret)}, ${inviter}, ${now.toISOString()}, ${expires.toISOString()})`,
        );
        const token = formatToken(org.orgId, id, secret);
        await deps.mail.enqueue(tx, {
          to: input.email,
          subject: 'You are invited to an organization on Palisade',
          body: `Accept the invitation: ${deps.publicOrigin}/invitations/accept#token=${token}\nIt expires at ${expires.toISOString()}.`,
        });
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'invitation.created',
          target: { type: 'invitation', id },
          details: { email: input.email, role: input.role, restricted },
        });
        const row = await one<InvRow>(tx, sql`select * from invitations where id = ${id}`);
        return { invitation: view({ ...(row as InvRow), email: input.email }), token };
      });
    },

    /**
     * Every invitation, for an unrestricted reader. A reader restricted to projects sees, as in
     * the member list, the invitations that reach one of their projects (unrestricted ones, and
     * restricted ones naming one of theirs), with only their own projects named.
     */
    async list(ctx: RequestContext): Promise<InvitationView[]> {
      const org = requireOrg(ctx);
      const scope = org.projectIds;
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const list = await rows<InvRow>(
          tx,
          scope === null
            ? sql`select * from invitations where org_id = ${org.orgId} order by created_at desc`
            : sql`select * from invitations where org_id = ${org.orgId} and (not restricted or project_ids && ${[...scope]}::uuid[])
                  order by created_at desc`,
        );
        return (await opened(deps.sealer, tx, org.orgId, list))
          .map((r) => (scope === null ? view(r) : { ...view(r), projectIds: r.project_ids.filter((p) => scope.includes(p)) }));
      });
    },

    /**
     * A restricted member revokes only invitations they could have made: restricted to projects
     * of theirs. Others they can see are refused; those they cannot see are not found.
     */
    async revoke(ctx: RequestContext, id: string): Promise<void> {
      const org = requireOrg(ctx);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const inv = await one<{ role: RoleAssignment['role']; custom_role_id: string | null; restricted: boolean; project_ids: string[] }>(
          tx,
          sql`select role, custom_role_id, restricted, project_ids from invitations where org_id = ${org.orgId} and id = ${id} for update`,
        );
        if (!inv) throw new AppError('not_found');
        if (org.projectIds !== null) {
          const scope = org.projectIds;
          if (inv.restricted && !inv.project_ids.some((p) => scope.includes(p))) throw new AppError('not_found');
          if (!inv.restricted || inv.project_ids.some((p) => !scope.includes(p))) {
            throw new AppError('privilege_escalation', 'you are restricted to projects: you can revoke only invitations restricted to your projects');
          }
        }
        // Revoking needs what creating needed (review R5 D): an admin cannot invite an owner, so
        // cannot undo an owner's invitation of a co-owner either.
        assertCanGrant(org, inv.role, await grantedBy(tx, { role: inv.role, customRoleId: inv.custom_role_id }));
        const n = await exec(
          tx,
          sql`update invitations set revoked_at = now() where org_id = ${org.orgId} and id = ${id}
              and accepted_at is null and revoked_at is null`,
        );
        if (n !== 1) throw new AppError('not_found');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'invitation.revoked', target: { type: 'invitation', id } });
      });
    },

    /**
     * Single use, expiring, bound to the invited email (which the account must have verified),
     * and re-checked against the inviter's current rights: an invitation from someone since
     * demoted or removed grants nothing.
     */
    async accept(ctx: RequestContext, token: string): Promise<AcceptedInvitation> {
      if (ctx.actor.type !== 'user') throw new AppError('unauthenticated');
      const { userId } = ctx.actor;
      const parsed = parseToken(token);
      if (!parsed) throw new AppError('token_invalid');
      const { orgId } = parsed;
      await deps.db.withTenant({ orgId, userId, projectIds: null }, async (tx) => {
        // The binding to the invited email means something only once the account has proven
        // that mailbox (a verification link or a password reset). The invitation token proves
        // nothing about it: the inviter is shown the token, and a forwarded mail leaks it.
        if (ctx.actor.type === 'user') await deps.sessionAllowed?.(tx, userId, ctx.actor.session.id);
        const me = await one<{ email_verified_at: Date | null }>(tx, sql`select email_verified_at from users where id = ${userId}`);
        const email = (await personOf(deps.sealer, tx, userId))?.email ?? '';
        if (!me?.email_verified_at) throw new AppError('email_unverified', 'verify your email address before accepting an invitation');
        const inv = await one<InvRow & { token_hash: string }>(
          tx,
          sql`select * from invitations where org_id = ${orgId} and id = ${parsed.id} for update`,
        );
        if (!inv || !safeEqual(inv.token_hash, sha256Hex(parsed.secret))) throw new AppError('token_invalid');
        if (inv.accepted_at || inv.revoked_at || inv.expires_at <= deps.clock.now()) throw new AppError('token_invalid');
        const [invited] = await opened(deps.sealer, tx, orgId, [inv]);
        if (!invited?.email || normalEmail(invited.email) !== normalEmail(email)) throw new AppError('token_invalid', 'the invitation is for another email address');
        const inviter = await loadMembership(tx, orgId, inv.invited_by);
        if (!inviter) throw new AppError('token_invalid', 'the inviter is no longer a member');
        const granted = await grantedBy(tx, { role: inv.role, customRoleId: inv.custom_role_id });
        const inviterAccess = accessFrom(orgId, inviter);
        try {
          assertCanGrant(inviterAccess, inv.role, granted);
          assertCanScope(inviterAccess, { restricted: inv.restricted, projectIds: inv.project_ids });
        } catch (err) {
          // The invitee did nothing wrong: the invitation itself is no longer good.
          if (err instanceof AppError) throw new AppError('token_invalid', 'the inviter can no longer grant this access');
          throw err;
        }
        try {
          // The invitation's custom role may hold org-wide permissions by now (data from before
          // role edits were checked against pending restricted invitations).
          assertRestrictable(granted, isRestricted(inv.role, inv.restricted));
        } catch (err) {
          if (err instanceof AppError) throw new AppError('token_invalid', 'the invitation\u2019s role now holds org-wide permissions, which a member restricted to projects cannot hold');
          throw err;
        }
        const existing = await one(tx, sql`select 1 as x from memberships where org_id = ${orgId} and user_id = ${userId}`);
        if (existing) throw new AppError('conflict', 'already a member');
        await exec(
          tx,
          sql`insert into memberships (org_id, user_id, role, custom_role_id, restricted)
              values (${orgId}, ${userId}, ${inv.role}, ${inv.custom_role_id}, ${inv.restricted})`,
        );
        for (const projectId of inv.project_ids) {
          await exec(
            tx,
            sql`insert into project_access (org_id, project_id, user_id) select ${orgId}, id, ${userId} from projects where id = ${projectId}`,
          );
        }
        await exec(tx, sql`update invitations set accepted_at = now(), accepted_by = ${userId} where org_id = ${orgId} and id = ${inv.id}`);
        await deps.onPrivilegeChange(tx, userId);
        await deps.audit.append(tx, orgId, ctx, {
          action: 'invitation.accepted',
          target: { type: 'invitation', id: inv.id },
          details: { role: inv.role },
          actor: { type: 'user', id: userId, role: inv.role },
        });
      });
      return { orgId };
    },
  };
}

export type InvitationService = ReturnType<typeof createInvitationService>;
