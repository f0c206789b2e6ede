import { sql } from 'kysely';
import { newId, randomToken } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { emailDomain, normalizeDomain } from '../../kernel/domain-name.js';
import { AppError } from '../../kernel/errors.js';
import { exec, one, rows, writeUnlessTaken, type Database, type Tx } from '../../db/database.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import type { AuditWriter } from '../audit/index.js';
import type { TxtLookup } from './dns.js';
import type { DomainView } from './responses.js';

/** A handful of brands per org; the cap bounds what one org can store and ask DNS about. */
export const MAX_DOMAINS_PER_ORG = 50;

export const VERIFICATION_LABEL = '_palisade-verification';
const RECORD_PREFIX = 'palisade-verification=';

interface DomainRow {
  id: string;
  domain: string;
  record_value: string;
  created_by: string;
  created_at: Date;
  verified_at: Date | null;
}

const COLUMNS = sql`id, domain, record_value, created_by, created_at, verified_at`;

const view = (r: DomainRow): DomainView => ({
  id: r.id,
  domain: r.domain,
  status: r.verified_at ? 'verified' : 'pending',
  verification: { type: 'TXT', name: `${VERIFICATION_LABEL}.${r.domain}`, value: r.record_value },
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
  verifiedAt: r.verified_at?.toISOString() ?? null,
});

export interface DomainDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  dns: TxtLookup;
  /** A domain was verified, in its transaction (SSO enforcement covers its users from now on). */
  onVerified?(tx: Tx, ctx: RequestContext, orgId: string, domain: string): Promise<void>;
}

/**
 * Email domains an org proves it controls. A claim is pending until the domain's DNS holds the
 * claim's own TXT record; verifying it writes the global domain → org entry whose primary key
 * refuses a second org, in the same transaction as the claim's verified_at and its audit event.
 * DNS is asked outside any transaction: a slow resolver holds no connection.
 */
export function createDomainService(deps: DomainDeps) {
  return {
    async list(ctx: RequestContext): Promise<DomainView[]> {
      const org = requireOrg(ctx);
      const list = await deps.db.withTenant(bindingOf(ctx), (tx) =>
        rows<DomainRow>(tx, sql`select ${COLUMNS} from org_domains where org_id = ${org.orgId} order by domain`),
      );
      return list.map(view);
    },

    async claim(ctx: RequestContext, rawDomain: string): Promise<DomainView> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      const domain = normalizeDomain(rawDomain);
      if (!domain) throw new AppError('validation_failed', 'not a domain name', [{ path: 'domain', message: 'a DNS name such as example.com' }]);
      const id = newId();
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const count = await one<{ n: number }>(tx, sql`select count(*)::int as n from org_domains where org_id = ${org.orgId}`);
        if ((count?.n ?? 0) >= MAX_DOMAINS_PER_ORG) throw new AppError('conflict', `an organization claims at most ${MAX_DOMAINS_PER_ORG} domains`);
        // Says only that some org holds it, never which.
        const owner = await one<{ org_id: string }>(tx, sql`select org_id from verified_domains where domain = ${domain}`);
        if (owner && owner.org_id !== org.orgId) throw new AppError('conflict', 'another organization has verified this domain');
        const inserted = await writeUnlessTaken(
          tx,
          sql`insert into org_domains (org_id, id, domain, record_value, created_by, created_at)
              values (${org.orgId}, ${id}, ${domain}, ${RECORD_PREFIX + randomToken(24)}, ${user.userId}, ${deps.clock.now().toISOString()})`,
        );
        if (!inserted) throw new AppError('conflict', 'the organization has already claimed this domain');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'domain.claimed', target: { type: 'domain', id }, details: { domain } });
        const r = await one<DomainRow>(tx, sql`select ${COLUMNS} from org_domains where org_id = ${org.orgId} and id = ${id}`);
        return view(r as DomainRow);
      });
    },

    /** Checks the claim's record in DNS and, when it is there, marks the domain verified (until removed). */
    async verify(ctx: RequestContext, id: string): Promise<DomainView> {
      const org = requireOrg(ctx);
      const claim = await deps.db.withTenant(bindingOf(ctx), (tx) =>
        one<DomainRow>(tx, sql`select ${COLUMNS} from org_domains where org_id = ${org.orgId} and id = ${id}`),
      );
      if (!claim) throw new AppError('not_found');
      if (claim.verified_at) throw new AppError('conflict', 'the domain is verified already');
      const name = `${VERIFICATION_LABEL}.${claim.domain}`;
      const answer = await deps.dns(name);
      if (answer.kind === 'failed') throw new AppError('domain_unverified', `the DNS lookup of ${name} failed (${answer.reason}); try again later`);
      // Never echoes what DNS holds: the caller learns only whether the one expected value is there.
      if (answer.kind === 'none' || !answer.records.some((r) => r.trim() === claim.record_value)) {
        throw new AppError('domain_unverified', `publish a TXT record at ${name} with the value ${claim.record_value}, then verify again (DNS changes can take a while to appear)`);
      }
      return deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const now = deps.clock.now().toISOString();
        const n = await exec(tx, sql`update org_domains set verified_at = ${now} where org_id = ${org.orgId} and id = ${id} and verified_at is null`);
        // Removed meanwhile, or verified by a concurrent call that recorded it first.
        if (n !== 1) {
          const still = await one(tx, sql`select 1 from org_domains where org_id = ${org.orgId} and id = ${id}`);
          throw still ? new AppError('conflict', 'the domain is verified already') : new AppError('not_found');
        }
        const taken = !(await writeUnlessTaken(tx, sql`insert into verified_domains (domain, org_id) values (${claim.domain}, ${org.orgId})`));
        if (taken) throw new AppError('conflict', 'another organization has verified this domain');
        await deps.audit.append(tx, org.orgId, ctx, { action: 'domain.verified', target: { type: 'domain', id }, details: { domain: claim.domain } });
        await deps.onVerified?.(tx, ctx, org.orgId, claim.domain);
        return view({ ...claim, verified_at: new Date(now) });
      });
    },

    async remove(ctx: RequestContext, id: string): Promise<void> {
      const org = requireOrg(ctx);
      await deps.db.withTenant(bindingOf(ctx), async (tx) => {
        const gone = await one<{ domain: string; verified_at: Date | null }>(
          tx,
          sql`delete from org_domains where org_id = ${org.orgId} and id = ${id} returning domain, verified_at`,
        );
        if (!gone) throw new AppError('not_found');
        // Only this org's entry: the key is the domain, so the org id guards another org's.
        if (gone.verified_at) await exec(tx, sql`delete from verified_domains where domain = ${gone.domain} and org_id = ${org.orgId}`);
        await deps.audit.append(tx, org.orgId, ctx, {
          action: 'domain.removed', target: { type: 'domain', id }, details: { domain: gone.domain, wasVerified: gone.verified_at !== null },
        });
      });
    },

    /** The org that verified the domain of `email`, if any (routes an SSO sign-in; no org is bound yet). */
    async orgOfEmail(email: string): Promise<string | null> {
      const domain = emailDomain(email);
      if (!domain) return null;
      const r = await deps.db.readGlobal('which org verified this email domain', (q) =>
        one<{ org_id: string }>(q, sql`select org_id from verified_domains where domain = ${domain}`),
      );
      return r?.org_id ?? null;
    },
  };
}

export type DomainService = ReturnType<typeof createDomainService>;
