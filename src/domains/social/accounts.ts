import { sql } from 'kysely';
import { newId } from '../../crypto/index.js';
import { canonicalEmail } from '../../kernel/domain-name.js';
import type { RequestContext } from '../../kernel/context.js';
import { AppError, type ErrorCode } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { exec, one, writeUnlessTaken, type Tx } from '../../db/database.js';
import { insertUserSql, personOf, socialIdentityEmailRef, userWithAnyEmail } from '../identity/people.js';
import type { Sealer } from '../keys/sealer.js';
import type { AccountDeps } from '../sso/accounts.js';
import type { SocialIdentity } from './providers.js';

/** Which provider (the deployment's id and its display name) an identity belongs to. */
export interface ProviderRef {
  id: string;
  name: string;
}

/** A refusal: its words for the user, and the problem code it answers with. */
export interface Refusal {
  refused: string;
  code: Extract<ErrorCode, 'sso_failed' | 'conflict'>;
}

const sealSocialEmail = (sealer: Sealer, tx: Tx, linkId: string, email: string | null) => sealer.seal(tx, socialIdentityEmailRef(linkId), email ?? '');

/** What a sign-in of this provider identity reaches, decided before anything is written. */
export type SocialDecision =
  | { kind: 'linked'; userId: string }
  | { kind: 'create' }
  | ({ kind: 'refused' } & Refusal);

/**
 * Reads only: the account the identity is linked to, or whether its first sign-in may create one.
 * Never a link by email address: an unknown identity whose address has an account is refused
 * (its holder signs in the usual way and links the provider from their account), so a provider
 * asserting someone else's address, verified or not, reaches nobody. An address the provider did
 * not verify neither matches nor creates.
 */
export async function decideSocialAccount(sealer: Sealer, tx: Tx, p: ProviderRef, id: SocialIdentity, signUp: boolean): Promise<SocialDecision> {
  const linked = await one<{ user_id: string }>(
    tx, sql`select user_id from social_identities where provider = ${p.id} and issuer = ${id.issuer} and subject = ${id.subject}`,
  );
  if (linked) return { kind: 'linked', userId: linked.user_id };
  if (!id.email || !id.emailVerified) {
    return {
      kind: 'refused', code: 'sso_failed',
      refused: `${p.name} did not assert a verified email address for an identity not linked to an account yet: ` +
        `sign in another way and link ${p.name} from your account`,
    };
  }
  // One spelling of an address (as SSO stores it): a trailing dot or space, or a Unicode domain,
  // must not make a second account beside an existing one (review 2026-12-06, social).
  const address = canonicalEmail(id.email);
  if (!address) return { kind: 'refused', code: 'sso_failed', refused: `${p.name} asserted an email address that is not one` };
  const existing = await one<{ id: string }>(tx, sql`select id from users where ${await userWithAnyEmail(sealer, tx, [id.email, address])}`);
  if (existing) {
    return {
      kind: 'refused', code: 'conflict',
      refused: `an account with this email address already exists and is not linked to this ${p.name} identity: ` +
        `sign in to it as usual, then link ${p.name} from your account (an account is never linked by its email address alone)`,
    };
  }
  if (!signUp) return { kind: 'refused', code: 'sso_failed', refused: `no account is linked to this ${p.name} identity, and sign-up through it is closed` };
  return { kind: 'create' };
}

/**
 * The account this identity signs in: its linked one, or one created as `decideSocialAccount`
 * allows. `localSignIn` is SSO enforcement's check of an address (sso/enforcement.ts), asked with
 * the account's address (or the new one's) before anything is written: it throws sso_required,
 * which rolls the transaction back.
 */
export async function socialAccountOf(
  tx: Tx, ctx: RequestContext, { audit, sealer }: AccountDeps, p: ProviderRef, id: SocialIdentity, signUp: boolean, now: string,
  localSignIn: (tx: Tx, email: string) => Promise<void>,
): Promise<{ userId: string } | Refusal> {
  const decision = await decideSocialAccount(sealer, tx, p, id, signUp);
  // An address under an org's SSO enforcement is sent to its IdP, not told to sign in locally
  // and link (which enforcement refuses): sso_required before the conflict (README trial).
  if (decision.kind === 'refused' && decision.code === 'conflict' && id.email) await localSignIn(tx, canonicalEmail(id.email) ?? id.email);
  if (decision.kind === 'refused') return { refused: decision.refused, code: decision.code };
  const email = decision.kind === 'linked'
    ? (await personOf(sealer, tx, decision.userId))?.email
    : canonicalEmail(id.email ?? '');
  if (email) await localSignIn(tx, email);
  if (decision.kind === 'linked') {
    const link = await one<{ id: string }>(tx, sql`select id from social_identities where provider = ${p.id} and issuer = ${id.issuer} and subject = ${id.subject}`);
    if (link) {
      await exec(tx, sql`update social_identities set last_sign_in_at = ${now}, email = '', email_sealed = ${await sealSocialEmail(sealer, tx, link.id, id.email)}
                         where id = ${link.id}`);
    }
    return { userId: decision.userId };
  }
  const userId = newId();
  // The provider verified the address (decideSocialAccount): so is the account's.
  const created = await writeUnlessTaken(
    tx, await insertUserSql(sealer, tx, userId, { email: email ?? '', name: displayName(id.name) }, { email_verified_at: now }),
  );
  // Taken meanwhile (a registration or another first sign-in): refused like an existing account.
  if (!created) return { code: 'conflict', refused: `an account with this email address already exists: sign in to it, then link ${p.name} from your account` };
  await audit.append(tx, SYSTEM_ORG_ID, ctx, {
    action: 'auth.social_account_created', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId }, details: { provider: p.id },
  });
  const linkId = newId();
  const inserted = await writeUnlessTaken(
    tx,
    sql`insert into social_identities (id, provider, issuer, subject, user_id, email_sealed, linked_at, last_sign_in_at)
        values (${linkId}, ${p.id}, ${id.issuer}, ${id.subject}, ${userId}, ${await sealSocialEmail(sealer, tx, linkId, id.email)}, ${now}, ${now})`,
  );
  // Thrown, not returned: the account created above goes with the transaction.
  if (!inserted) throw new AppError('conflict', 'this identity is being linked by another sign-in; try again');
  await audit.append(tx, SYSTEM_ORG_ID, ctx, {
    action: 'auth.social_identity_linked', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
    details: { provider: p.id, via: 'sign_up' },
  });
  return { userId };
}

/**
 * Links a provider identity to the account of a signed-in session: the session proves the
 * account, the provider flow the identity, so the addresses need not match. The session must
 * still be live. Linking the same pair again changes nothing.
 */
export async function linkSocialToSession(
  tx: Tx, ctx: RequestContext, { audit, sealer }: AccountDeps, p: ProviderRef, id: SocialIdentity, sessionId: string, now: string,
): Promise<{ userId: string } | Refusal> {
  const session = await one<{ user_id: string }>(
    tx,
    sql`select s.user_id from sessions s join users u on u.id = s.user_id
        where s.id = ${sessionId} and s.revoked_at is null and s.epoch = u.session_epoch and s.absolute_expires_at > ${now}`,
  );
  if (!session) return { code: 'sso_failed', refused: 'the session that asked for the link has ended; sign in and try again' };
  const userId = session.user_id;
  const linked = await one<{ user_id: string }>(
    tx, sql`select user_id from social_identities where provider = ${p.id} and issuer = ${id.issuer} and subject = ${id.subject}`,
  );
  if (linked) return linked.user_id === userId ? { userId } : { code: 'conflict', refused: `this ${p.name} identity is linked to another account` };
  const linkId = newId();
  const inserted = await writeUnlessTaken(
    tx,
    sql`insert into social_identities (id, provider, issuer, subject, user_id, email_sealed, linked_at)
        values (${linkId}, ${p.id}, ${id.issuer}, ${id.subject}, ${userId}, ${await sealSocialEmail(sealer, tx, linkId, id.email)}, ${now})`,
  );
  if (!inserted) return { code: 'conflict', refused: `your account is linked to another ${p.name} identity` };
  await audit.append(tx, SYSTEM_ORG_ID, ctx, {
    action: 'auth.social_identity_linked', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
    details: { provider: p.id, via: 'session' },
  });
  return { userId };
}

/** The provider's display name, as plain text: no control or direction-changing characters, bounded. */
function displayName(name: string | null): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
  return (name ?? '').replace(/[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/g, '').trim().slice(0, 100);
}
