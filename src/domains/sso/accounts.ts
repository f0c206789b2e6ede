import { sql } from 'kysely';
import { newId } from '../../crypto/index.js';
import type { RequestContext } from '../../kernel/context.js';
import { canonicalEmail, emailDomain } from '../../kernel/domain-name.js';
import { ALWAYS_RESTRICTED_ROLES } from '../../kernel/permissions.js';
import { exec, one, rows, writeUnlessTaken, type Tx } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import { insertUserSql, ssoIdentityEmailRef, userWithAnyEmail } from '../identity/people.js';
import type { Sealer } from '../keys/sealer.js';
import type { SignInConnection } from './connections.js';

/** What account decisions write with: the audit trail, and the sealer for addresses. */
export interface AccountDeps {
  audit: AuditWriter;
  sealer: Sealer;
}

const sealIdentityEmail = (sealer: Sealer, tx: Tx, orgId: string, linkId: string, email: string | null) =>
  sealer.seal(tx, ssoIdentityEmailRef(orgId, linkId), email ?? '');

/** The part of a connection the account decisions read: which org and connection, and its policy. */
type AccountConnection = Pick<SignInConnection, 'orgId' | 'id' | 'policy'>;
import type { OidcIdentity } from './oidc.js';
import { roleFor } from './role-mapping.js';

/** What a sign-in of this identity through this connection reaches, decided before anything is written. */
export type AccountDecision =
  | { kind: 'linked'; userId: string }
  | { kind: 'link'; userId: string }
  | { kind: 'create' }
  | { kind: 'refused'; reason: string };

/**
 * Reads only: the identity's linked account, or whether its first sign-in may link or create one.
 * Only an address the IdP verified, in a domain this org has proven in DNS, may reach or create an
 * account on a first sign-in (the IdP of another org, or one asserting an address outside the
 * org's domains, reaches nobody). Runs bound to the connection's org.
 */
export async function decideAccount(sealer: Sealer, tx: Tx, c: AccountConnection, id: OidcIdentity): Promise<AccountDecision> {
  const linked = await one<{ user_id: string }>(
    tx,
    sql`select user_id from sso_identities
        where org_id = ${c.orgId} and connection_id = ${c.id} and issuer = ${id.issuer} and subject = ${id.subject}`,
  );
  if (linked) return { kind: 'linked', userId: linked.user_id };
  if (!id.email || !id.emailVerified) return { kind: 'refused', reason: 'the identity provider did not assert a verified email address for an identity not linked yet' };
  const domain = emailDomain(id.email);
  const owner = domain ? await one<{ org_id: string }>(tx, sql`select org_id from verified_domains where domain = ${domain}`) : undefined;
  if (owner?.org_id !== c.orgId) return { kind: 'refused', reason: 'the email address is not in a domain this organization has verified' };
  const address = canonicalEmail(id.email);
  if (!address) return { kind: 'refused', reason: 'the email address is not in a domain this organization has verified' };
  const matches = await rows<{ id: string; email_verified_at: Date | null }>(
    tx, sql`select id, email_verified_at from users where ${await userWithAnyEmail(sealer, tx, [id.email, address])} order by id`,
  );
  // The IdP's spelling and the canonical one may reach two accounts made before addresses were
  // canonical: neither is chosen (review of 039, finding 6).
  if (matches.length > 1) return { kind: 'refused', reason: 'more than one account has this email address in some spelling: an operator must merge them' };
  const existing = matches[0];
  if (existing) {
    // An unverified account may have been registered by someone else with this address
    // (pre-hijacking): it is not linked until its holder proves the mailbox.
    if (!existing.email_verified_at) return { kind: 'refused', reason: 'the account with this email address has not verified it yet' };
    return { kind: 'link', userId: existing.id };
  }
  if (!c.policy.jitRole && !roleFor(c.policy.groupRoles, id.groups)) {
    return { kind: 'refused', reason: 'no account has this email address, and this connection does not create accounts for it' };
  }
  return { kind: 'create' };
}

/** The account this IdP identity reaches, linking or creating it as `decideAccount` allows. */
export async function accountOf(
  tx: Tx, ctx: RequestContext, { audit, sealer }: AccountDeps, c: AccountConnection, id: OidcIdentity, now: string,
): Promise<{ userId: string } | { refused: string }> {
  const decision = await decideAccount(sealer, tx, c, id);
  if (decision.kind === 'refused') return { refused: decision.reason };
  if (decision.kind === 'linked') {
    const link = await one<{ id: string }>(
      tx, sql`select id from sso_identities where org_id = ${c.orgId} and connection_id = ${c.id} and issuer = ${id.issuer} and subject = ${id.subject}`,
    );
    if (link) {
      await exec(tx, sql`update sso_identities set last_sign_in_at = ${now}, email = '', email_sealed = ${await sealIdentityEmail(sealer, tx, c.orgId, link.id, id.email)}
                         where org_id = ${c.orgId} and id = ${link.id}`);
    }
    return { userId: decision.userId };
  }
  let userId: string;
  if (decision.kind === 'link') {
    userId = decision.userId;
  } else {
    userId = newId();
    const created = await writeUnlessTaken(
      tx,
      // The stored spelling is the canonical one, whatever the IdP wrote (its domain is how SSO
      // enforcement finds the account: review 2026-12-06 F1).
      await insertUserSql(sealer, tx, userId, { email: canonicalEmail(id.email ?? '') ?? id.email ?? '', name: displayName(id.name) }, { email_verified_at: now }),
    );
    // Created by a concurrent first sign-in: that one links it.
    if (!created) return { refused: 'the account is being created by another sign-in; try again' };
    await audit.append(tx, c.orgId, ctx, {
      action: 'sso.member_provisioned', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
      details: { connectionId: c.id, created: 'account' },
    });
  }
  const linkId = newId();
  const inserted = await writeUnlessTaken(
    tx,
    sql`insert into sso_identities (org_id, id, connection_id, issuer, subject, user_id, email_sealed, linked_at, last_sign_in_at)
        values (${c.orgId}, ${linkId}, ${c.id}, ${id.issuer}, ${id.subject}, ${userId}, ${await sealIdentityEmail(sealer, tx, c.orgId, linkId, id.email)}, ${now}, ${now})`,
  );
  // The same identity linked concurrently, or this account linked to another identity at this connection.
  if (!inserted) return { refused: 'the account is linked to another identity at this identity provider' };
  await audit.append(tx, c.orgId, ctx, {
    action: 'sso.identity_linked', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
    details: { connectionId: c.id, issuer: id.issuer, via: 'verified_domain' },
  });
  return { userId };
}

/** Just-in-time membership: members the connection creates get its role (never an existing member's change). */
export async function provisionMembership(tx: Tx, ctx: RequestContext, audit: AuditWriter, c: AccountConnection, userId: string): Promise<void> {
  const role = c.policy.jitRole;
  if (!role) return;
  const restricted = ALWAYS_RESTRICTED_ROLES.includes(role);
  const added = await exec(
    tx,
    sql`insert into memberships (org_id, user_id, role, restricted) values (${c.orgId}, ${userId}, ${role}, ${restricted}) on conflict do nothing`,
  );
  if (added === 1) {
    await audit.append(tx, c.orgId, ctx, {
      action: 'sso.member_provisioned', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
      details: { connectionId: c.id, created: 'membership', role },
    });
  }
}

/** The IdP's display name, as plain text: no control or direction-changing characters, bounded. */
function displayName(name: string | null): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
  return (name ?? '').replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, '').trim().slice(0, 100);
}

/**
 * Links an IdP identity to the account of a signed-in session: the session proves the account,
 * the IdP flow the identity, so the addresses need not match. The session must still be live
 * and its user a member of the connection's org. Linking the same pair again changes nothing.
 */
export async function linkToSession(
  tx: Tx, ctx: RequestContext, { audit, sealer }: AccountDeps, c: AccountConnection, id: OidcIdentity, sessionId: string, now: string,
): Promise<{ userId: string } | { refused: string }> {
  const session = await one<{ user_id: string }>(
    tx,
    sql`select s.user_id from sessions s join users u on u.id = s.user_id
        where s.id = ${sessionId} and s.revoked_at is null and s.epoch = u.session_epoch and s.absolute_expires_at > ${now}`,
  );
  if (!session) return { refused: 'the session that asked for the link has ended; sign in and try again' };
  const userId = session.user_id;
  const member = await one<{ user_id: string }>(tx, sql`select user_id from memberships where org_id = ${c.orgId} and user_id = ${userId}`);
  if (!member) return { refused: 'your account is not a member of this organization' };
  const decision = await decideAccount(sealer, tx, c, id);
  if (decision.kind === 'linked') {
    return decision.userId === userId ? { userId } : { refused: 'this identity is linked to another account' };
  }
  const linkId = newId();
  const inserted = await writeUnlessTaken(
    tx,
    sql`insert into sso_identities (org_id, id, connection_id, issuer, subject, user_id, email_sealed, linked_at)
        values (${c.orgId}, ${linkId}, ${c.id}, ${id.issuer}, ${id.subject}, ${userId}, ${await sealIdentityEmail(sealer, tx, c.orgId, linkId, id.email)}, ${now})`,
  );
  if (!inserted) return { refused: 'your account is linked to another identity at this identity provider' };
  await audit.append(tx, c.orgId, ctx, {
    action: 'sso.identity_linked', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
    details: { connectionId: c.id, issuer: id.issuer, via: 'session' },
  });
  return { userId };
}
