import { sql } from 'kysely';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { one, rows, type Database } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/sealer.js';
import { socialIdentityEmailRef } from '../identity/people.js';

export interface SocialIdentityView {
  provider: string;
  email: string;
  linkedAt: string;
  lastSignInAt: string | null;
}

/**
 * The social identities linked to the signed-in user's account: listed, and unlinked one at a
 * time. A provider account that is lost or compromised stops being a way in at once; a password
 * reset or "sign out everywhere" alone would leave the link in place.
 */
export function createSocialIdentities(d: { db: Database; audit: AuditWriter; sealer: Sealer }) {
  const system = { orgId: SYSTEM_ORG_ID };
  return {
    async list(userId: string): Promise<SocialIdentityView[]> {
      return d.db.withTenant(system, async (tx) => {
        const found = await rows<{ id: string; provider: string; email_sealed: string | null; linked_at: Date; last_sign_in_at: Date | null }>(
          tx, sql`select id, provider, email_sealed, linked_at, last_sign_in_at from social_identities where user_id = ${userId} order by provider`,
        );
        const open = d.sealer.opener(tx);
        const out: SocialIdentityView[] = [];
        for (const r of found) {
          // Links made before migration 039 show no address until their next sign-in stores it sealed.
          const email = r.email_sealed ? await open(socialIdentityEmailRef(r.id), r.email_sealed) : '';
          out.push({ provider: r.provider, email, linkedAt: r.linked_at.toISOString(), lastSignInAt: r.last_sign_in_at?.toISOString() ?? null });
        }
        return out;
      });
    },

    async unlink(ctx: RequestContext, provider: string): Promise<void> {
      const actor = userActorOf(ctx);
      await d.db.withTenant(system, async (tx) => {
        const gone = await one<{ issuer: string }>(
          tx, sql`delete from social_identities where user_id = ${actor.userId} and provider = ${provider} returning issuer`,
        );
        if (!gone) throw new AppError('not_found', 'no identity at this provider is linked to your account');
        await d.audit.append(tx, SYSTEM_ORG_ID, ctx, {
          action: 'auth.social_identity_unlinked', target: { type: 'user', id: actor.userId }, details: { provider, issuer: gone.issuer },
        });
      });
    },
  };
}

export type SocialIdentities = ReturnType<typeof createSocialIdentities>;
