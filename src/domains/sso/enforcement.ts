import { sql } from 'kysely';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext } from '../../kernel/context.js';
import { emailDomain } from '../../kernel/domain-name.js';
import { AppError } from '../../kernel/errors.js';
import { exec, one, rows, type Database, type Tx } from '../../db/database.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import type { AuditWriter } from '../audit/index.js';
import { quotedLine, type MailPort } from '../mail/index.js';
import type { SsoGate, SsoGateVia } from '../sessions/index.js';
import { peopleOf, personOf, usersInDomains } from '../identity/people.js';
import type { Sealer } from '../keys/sealer.js';
import type { EnforcementView } from './responses.js';

/** How many owners an org may name for break-glass. */
export const MAX_BREAK_GLASS_OWNERS = 3;
/** A break-glass session ends after an hour, whatever the deployment's session lifetime. */
export const BREAK_GLASS_SESSION_SECONDS = 3600;

/** The enforcement that covers an email address: the org, and who of its owners may break glass. */
export interface SsoRule {
  orgId: string;
  breakGlassOwners: readonly string[];
}

export interface EnforcementDeps {
  db: Database;
  clock: Clock;
  audit: AuditWriter;
  mail: MailPort;
  sealer: Sealer;
  publicOrigin: string;
}

/** Where a user under enforcement signs in instead: the SSO start for their address. */
export function ssoStartFor(email: string): string {
  return `/api/auth/sso/start?email=${encodeURIComponent(email)}`;
}

function ssoRequired(email: string): AppError {
  return new AppError('sso_required', 'sign in through your organization\u2019s identity provider', undefined, { ssoStart: ssoStartFor(email) });
}

/** The rule for `email`'s domain, read with whatever binding `q` has (both tables are global). */
async function ruleOf(q: Tx, email: string): Promise<SsoRule | null> {
  const domain = emailDomain(email);
  if (!domain) return null;
  const r = await one<{ org_id: string; break_glass_owners: string[] }>(
    q,
    sql`select e.org_id, e.break_glass_owners from verified_domains d join sso_enforcement e on e.org_id = d.org_id
        where d.domain = ${domain} and e.enforced_since is not null`,
  );
  return r ? { orgId: r.org_id, breakGlassOwners: r.break_glass_owners } : null;
}

/**
 * SSO enforcement: an org that turns it on sends every user whose email is in one of its verified
 * domains to its identity provider. Routes that take a local credential ask `assertLocalSignIn`
 * first (a domain-level answer: it tells nothing about whether an account exists); the sign-in
 * service asks `refusal` again inside the transaction that issues a session (the backstop for
 * every method, including the second step of a sign-in that began before enforcement).
 */
export function createSsoEnforcement(deps: EnforcementDeps) {
  const { db } = deps;

  /**
   * Ends the sessions of the org's users (emails in `domains`) that its SSO did not open: not an
   * SSO session of this org, nor one of its break-glass sessions. The users' rows are locked
   * first: a sign-in of one of them that is issuing a session right now either commits before
   * (and its session is ended here) or reads the enforcement after (and is refused).
   */
  async function endOtherSessions(tx: Tx, orgId: string, domains: readonly string[]): Promise<number> {
    if (domains.length === 0) return 0;
    // Addresses are sealed: their domain's blind index was made from emailDomain's spelling (IDNA,
    // lower case, no trailing dot), the spelling verified domains have and the sign-in gate reads.
    const candidates = await rows<{ id: string }>(
      tx, sql`select id from users where ${await usersInDomains(deps.sealer, tx, domains)} order by id for update`,
    );
    const ids = candidates.map((u) => u.id);
    if (ids.length === 0) return 0;
    return exec(
      tx,
      sql`update sessions set revoked_at = ${deps.clock.now().toISOString()}, revoked_reason = 'sso_enforced'
          where user_id = any (${ids}::uuid[]) and revoked_at is null
            and not (auth_method = 'sso' and sso_org_id is not distinct from ${orgId}::uuid)
            and break_glass_org_id is distinct from ${orgId}::uuid`,
    );
  }

  async function verifiedDomains(tx: Tx, orgId: string): Promise<string[]> {
    return (await rows<{ domain: string }>(tx, sql`select domain from verified_domains where org_id = ${orgId} order by domain`)).map((r) => r.domain);
  }

  async function viewOf(tx: Tx, orgId: string): Promise<EnforcementView> {
    const r = await one<{ break_glass_owners: string[]; enforced_since: Date | null }>(
      tx, sql`select break_glass_owners, enforced_since from sso_enforcement where org_id = ${orgId}`,
    );
    const owners = r?.break_glass_owners ?? [];
    const people = await peopleOf(deps.sealer, tx, owners);
    return {
      enforced: Boolean(r?.enforced_since),
      enforcedSince: r?.enforced_since?.toISOString() ?? null,
      breakGlassOwners: owners.map((id) => ({ userId: id, email: people.get(id)?.email ?? '' })),
      domains: await verifiedDomains(tx, orgId),
    };
  }

  /** The org's row, with the org locked: one change of its enforcement at a time. */
  async function lockedRow(tx: Tx, orgId: string) {
    await one(tx, sql`select 1 from organizations where org_id = ${orgId} for update`);
    return one<{ break_glass_owners: string[]; enforced_since: Date | null }>(
      tx, sql`select break_glass_owners, enforced_since from sso_enforcement where org_id = ${orgId}`,
    );
  }

  const gate: SsoGate = {
    async refusal(tx: Tx, userId: string, via: SsoGateVia) {
      // Shared with enabling enforcement (endOtherSessions locks these rows for update).
      const locked = await one(tx, sql`select 1 from users where id = ${userId} for share`);
      const user = locked ? await personOf(deps.sealer, tx, userId) : null;
      if (!user) return null;
      const rule = await ruleOf(tx, user.email);
      if (!rule) return null;
      if (via.sso?.orgId === rule.orgId) return null;
      if (via.breakGlassOrgId === rule.orgId && rule.breakGlassOwners.includes(userId)) return null;
      return { orgId: rule.orgId, error: ssoRequired(user.email) };
    },

    async recordBreakGlass(ctx: RequestContext, userId: string, orgId: string): Promise<void> {
      await db.withTenant({ orgId }, async (tx) => {
        const user = await personOf(deps.sealer, tx, userId);
        const rule = user ? await ruleOf(tx, user.email) : null;
        const owner = await one(tx, sql`select 1 from memberships where org_id = ${orgId} and user_id = ${userId} and role = 'owner'`);
        // Checked again at the end: the list or the ownership may have changed since the password step.
        if (!user || rule?.orgId !== orgId || !rule.breakGlassOwners.includes(userId) || !owner) {
          throw new AppError('forbidden', 'this account may not use break-glass for the organization');
        }
        const otherIds = await rows<{ user_id: string }>(
          tx, sql`select user_id from memberships where org_id = ${orgId} and role = 'owner' and user_id <> ${userId} order by user_id`,
        );
        const others = [...(await peopleOf(deps.sealer, tx, otherIds.map((o) => o.user_id))).values()];
        await deps.audit.append(tx, orgId, ctx, {
          action: 'auth.break_glass', target: { type: 'user', id: userId }, actor: { type: 'user', id: userId },
          details: { sessionLifetimeSeconds: BREAK_GLASS_SESSION_SECONDS, ownersNotified: others.length },
        });
        for (const o of others) {
          await deps.mail.enqueue(tx, {
            to: o.email,
            subject: 'Palisade: a break-glass sign-in to your organization',
            body: [
              'An owner of your organization signed in with a password and a second factor, bypassing single sign-on (break-glass).',
              quotedLine('Owner', user.email),
              quotedLine('From address', ctx.ip),
              quotedLine('Browser', ctx.userAgent),
              `The session ends within an hour. The organization's audit trail has the event; review it at ${deps.publicOrigin}.`,
            ].join('\n'),
          });
        }
      });
    },
  };

  return {
    gate,

    /** An existing session of `userId` may act under enforcement only if the enforcing org's SSO (or break-glass) opened it. */
    async assertSessionAllowed(tx: Tx, userId: string, sessionId: string): Promise<void> {
      const how = await one<{ auth_method: string | null; sso_org_id: string | null; break_glass_org_id: string | null }>(
        tx, sql`select auth_method, sso_org_id, break_glass_org_id from sessions where id = ${sessionId} and user_id = ${userId}`,
      );
      const refused = await gate.refusal(tx, userId, {
        sso: how?.auth_method === 'sso' && how.sso_org_id ? { orgId: how.sso_org_id } : undefined,
        breakGlassOrgId: how?.break_glass_org_id ?? undefined,
      });
      if (refused) throw refused.error;
    },

    /**
     * Refuses (sso_required) a local sign-in, registration, reset or mailed link for an address in
     * a verified domain of an org that enforces SSO. Asked before any credential is checked: the
     * answer depends on the domain only.
     */
    async assertLocalSignIn(email: string): Promise<void> {
      const rule = await db.readGlobal('is this email domain under SSO enforcement', (q) => ruleOf(q, email));
      if (rule) throw ssoRequired(email);
    },

    /** The same inside the caller's transaction (a reset token's account, read in its transaction). */
    async assertLocalSignInIn(tx: Tx, email: string): Promise<void> {
      if (await ruleOf(tx, email)) throw ssoRequired(email);
    },

    /** The rule covering `email`, for the break-glass route. */
    async ruleFor(email: string): Promise<SsoRule | null> {
      return db.readGlobal('is this email domain under SSO enforcement', (q) => ruleOf(q, email));
    },

    async get(ctx: RequestContext): Promise<EnforcementView> {
      const org = requireOrg(ctx);
      return db.withTenant(bindingOf(ctx), (tx) => viewOf(tx, org.orgId));
    },

    /**
     * Turns enforcement on or off. On needs a verified domain and an enabled connection (or nobody
     * of the org could sign in but break-glass), and ends the other sessions of the users it covers.
     */
    async setEnforced(ctx: RequestContext, enforced: boolean): Promise<EnforcementView & { sessionsEnded: number }> {
      const org = requireOrg(ctx);
      // Switching it on decides how the owners themselves sign in (and ends their other sessions):
      // an owner's act. An admin would otherwise lock every owner of the domain out, then break
      // the connection (review 2026-12-06 F2). Switching it off (sso:manage) locks nobody out.
      if (enforced && !org.permissions.has('owners:manage')) {
        throw new AppError('privilege_escalation', 'only an owner may switch SSO enforcement on (name the break-glass owners first)');
      }
      return db.withTenant(bindingOf(ctx), async (tx) => {
        const before = await lockedRow(tx, org.orgId);
        const wasOn = Boolean(before?.enforced_since);
        if (enforced === wasOn) throw new AppError('conflict', `SSO enforcement is ${wasOn ? 'on' : 'off'} already`);
        const domains = await verifiedDomains(tx, org.orgId);
        let sessionsEnded = 0;
        if (enforced) {
          if (domains.length === 0) throw new AppError('conflict', 'verify an email domain first: enforcement applies to the users of the org\u2019s verified domains');
          const live = await one(tx, sql`select 1 from sso_connections where org_id = ${org.orgId} and enabled`);
          if (!live) throw new AppError('conflict', 'enable an SSO connection first: under enforcement it is the only way in');
        }
        const since = enforced ? deps.clock.now().toISOString() : null;
        await exec(tx, sql`insert into sso_enforcement (org_id, enforced_since) values (${org.orgId}, ${since})
                           on conflict (org_id) do update set enforced_since = excluded.enforced_since`);
        if (enforced) {
          sessionsEnded = await endOtherSessions(tx, org.orgId, domains);
          await deps.audit.append(tx, org.orgId, ctx, {
            action: 'sso.enforcement_enabled', target: { type: 'organization', id: org.orgId },
            details: { domains, breakGlassOwners: before?.break_glass_owners ?? [], sessionsEnded },
          });
        } else {
          await deps.audit.append(tx, org.orgId, ctx, { action: 'sso.enforcement_disabled', target: { type: 'organization', id: org.orgId }, details: { domains } });
        }
        return { ...(await viewOf(tx, org.orgId)), sessionsEnded };
      });
    },

    /**
     * Names the owners who keep a local way in (at most three; each an owner of the org). An
     * owner's act (the route asks `owners:manage`): an admin must not choose who keeps one.
     */
    async setBreakGlassOwners(ctx: RequestContext, requested: readonly string[]): Promise<EnforcementView> {
      const org = requireOrg(ctx);
      const owners = [...new Set(requested)];
      if (owners.length > MAX_BREAK_GLASS_OWNERS) {
        throw new AppError('validation_failed', `at most ${MAX_BREAK_GLASS_OWNERS} break-glass owners`, [{ path: 'owners', message: 'too many' }]);
      }
      return db.withTenant(bindingOf(ctx), async (tx) => {
        const before = await lockedRow(tx, org.orgId);
        const found = owners.length === 0 ? [] : await rows<{ user_id: string }>(
          tx, sql`select user_id from memberships where org_id = ${org.orgId} and role = 'owner' and user_id = any (${owners}::uuid[])`,
        );
        const missing = owners.filter((id) => !found.some((f) => f.user_id === id));
        if (missing.length > 0) {
          throw new AppError('validation_failed', 'break-glass owners must be owners of the organization', missing.map((id) => ({ path: 'owners', message: `${id} is not an owner` })));
        }
        await exec(tx, sql`insert into sso_enforcement (org_id, break_glass_owners) values (${org.orgId}, ${owners}::uuid[])
                           on conflict (org_id) do update set break_glass_owners = excluded.break_glass_owners`);
        // Taken off the list: a break-glass session they hold now ends with the right that opened it.
        const dropped = (before?.break_glass_owners ?? []).filter((id) => !owners.includes(id));
        const sessionsEnded = dropped.length === 0 ? 0 : await exec(
          tx,
          sql`update sessions set revoked_at = ${deps.clock.now().toISOString()}, revoked_reason = 'break_glass_withdrawn'
              where user_id = any (${dropped}::uuid[]) and break_glass_org_id = ${org.orgId} and revoked_at is null`,
        );
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'sso.break_glass_owners_changed', target: { type: 'organization', id: org.orgId },
          details: { before: before?.break_glass_owners ?? [], after: owners, sessionsEnded },
        });
        return viewOf(tx, org.orgId);
      });
    },

    /**
     * A domain was verified by an org that enforces SSO: its users come under enforcement now, and
     * their other sessions end as they would have had the domain been verified before. In the
     * verification's transaction.
     */
    async domainVerified(tx: Tx, ctx: RequestContext, orgId: string, domain: string): Promise<void> {
      const on = await one(tx, sql`select 1 from sso_enforcement where org_id = ${orgId} and enforced_since is not null`);
      if (!on) return;
      const n = await endOtherSessions(tx, orgId, [domain]);
      await deps.audit.append(tx, orgId, ctx, { action: 'sso.sessions_ended', target: { type: 'organization', id: orgId }, details: { domain, sessionsEnded: n } });
    },
  };
}

export type SsoEnforcement = ReturnType<typeof createSsoEnforcement>;

/**
 * Under SSO enforcement the org's enabled connections are its users' only way in: the last one
 * may not be disabled or deleted (turn enforcement off first). The org row serializes this with
 * other such changes and with switching enforcement on.
 */
export async function keepOneWayIn(tx: Tx, orgId: string, leaving: string): Promise<void> {
  await one(tx, sql`select 1 from organizations where org_id = ${orgId} for update`);
  const enforced = await one(tx, sql`select 1 from sso_enforcement where org_id = ${orgId} and enforced_since is not null`);
  if (!enforced) return;
  const other = await one(tx, sql`select 1 from sso_connections where org_id = ${orgId} and enabled and id <> ${leaving}`);
  if (!other) throw new AppError('conflict', 'the organization enforces SSO and this is its last enabled connection: turn enforcement off first');
}
