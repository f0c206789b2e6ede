import { sql } from 'kysely';
import { newId, type FieldRef } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { exec, one, type Database } from '../../db/database.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { decideAccount, type AccountDecision } from './accounts.js';
import type { SignInConnection } from './connections.js';
import type { SsoTestView } from './responses.js';
import { roleFor } from './role-mapping.js';
import type { SsoIdentity } from './sign-in.js';

export interface ConnectionTestDeps {
  db: Database;
  clock: Clock;
  audit: AuditWriter;
  sealer: Sealer;
}

/** As long as the flow that records it: a result nobody read by then is of no use. */
export const TEST_TTL_MS = 10 * 60_000;

interface TestRow {
  id: string;
  connection_id: string;
  status: 'pending' | 'succeeded' | 'failed';
  created_at: Date;
  finished_at: Date | null;
  result_sealed: string | null;
  reason: string | null;
}

type TestResult = Pick<SsoTestView, 'claims' | 'signIn'>;

/** The part of a connection a run's preview reads: which org and connection, and its sign-in policy. */
type TestedConnection = Pick<SignInConnection, 'orgId' | 'id' | 'policy'>;

const resultRef = (orgId: string, id: string): FieldRef => ({ scope: orgId, table: 'sso_tests', column: 'result_sealed', row: id });

/**
 * What a real sign-in would do with these claims, in words for the admin. `member`: the role the
 * account it reaches holds in the org, null when it is not a member (a sign-in then gives it the
 * JIT membership, as `complete` does for linked and linking accounts alike).
 */
function previewOf(
  decision: AccountDecision, c: TestedConnection, groups: readonly string[], member: { role: string } | null,
): NonNullable<SsoTestView['signIn']> {
  const mapped = c.policy.groupRoles.length > 0 ? roleFor(c.policy.groupRoles, groups) : null;
  const role = mapped?.role ?? c.policy.jitRole;
  /** The role an existing account's sign-in gives: the group mapping's, else the JIT role of a new member, else none. */
  const accountRole = (): { role: string | null; membership: string } => {
    if (c.policy.groupRoles.length > 0) return { role, membership: '' };
    if (member) return { role: null, membership: '' };
    if (c.policy.jitRole) return { role: c.policy.jitRole, membership: `; the account is not a member of this organization yet: the sign-in makes it one, as ${c.policy.jitRole}` };
    return { role: null, membership: '; the account is not a member of this organization, and this connection adds no members (no JIT role): it signs in without access to it' };
  };
  switch (decision.kind) {
    case 'linked': {
      const r = accountRole();
      return { outcome: 'signs_in', userId: decision.userId, role: r.role, detail: `the identity is linked to an account: it signs in as that account${r.membership}` };
    }
    case 'link': {
      const r = accountRole();
      return { outcome: 'links_account', userId: decision.userId, role: r.role, detail: `the first sign-in links the existing account with this verified address${r.membership}` };
    }
    case 'create':
      return { outcome: 'creates_account', userId: null, role, detail: 'the first sign-in creates an account and a membership' };
    case 'refused':
      return { outcome: 'refused', userId: null, role: null, detail: decision.reason };
  }
}

/**
 * "Test connection": an admin's real sign-in at the IdP that records what it asserted and what a
 * sign-in would do with it, and signs nobody in. Only the admin who started a run reads it, for
 * ten minutes; the claims are sealed with the org's data key (they are someone's personal data).
 */
export function createConnectionTests(d: ConnectionTestDeps) {
  return {
    /** A pending run for `connectionId` (the caller checked the connection is the org's). */
    async open(ctx: RequestContext, connectionId: string): Promise<string> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      const id = newId();
      const now = d.clock.now();
      await d.db.withTenant(bindingOf(ctx), async (tx) => {
        await exec(
          tx,
          sql`insert into sso_tests (org_id, id, connection_id, started_by, created_at, expires_at)
              values (${org.orgId}, ${id}, ${connectionId}, ${user.userId}, ${now.toISOString()}, ${new Date(now.getTime() + TEST_TTL_MS).toISOString()})`,
        );
        await d.audit.append(tx, org.orgId, ctx, { action: 'sso.connection_test_started', target: { type: 'sso_connection', id: connectionId }, details: { testId: id } });
      });
      return id;
    },

    /**
     * The IdP answered (or the exchange failed): the run's result, once. Nothing else is written.
     * False when the run is no longer pending (answered already, or expired): the caller refuses
     * that answer as the replay it is.
     */
    async record(
      ctx: RequestContext, flow: { orgId: string; testId: string },
      outcome: { c: TestedConnection; identity: SsoIdentity; attributes?: Record<string, string[]> } | { reason: string },
    ): Promise<boolean> {
      const now = d.clock.now().toISOString();
      // Every project in view: a group mapping's preview names projects of the org.
      return d.db.withTenant({ orgId: flow.orgId, projectIds: null }, async (tx) => {
        const run = await one<{ started_by: string; connection_id: string }>(
          tx,
          sql`select started_by, connection_id from sso_tests
              where org_id = ${flow.orgId} and id = ${flow.testId} and status = 'pending' and expires_at > ${now} for update`,
        );
        if (!run) return false;
        let sealed: string | null = null;
        let reason: string | null = null;
        if ('identity' in outcome) {
          const { c, identity } = outcome;
          const decision = await decideAccount(d.sealer, tx, c, identity);
          // An existing account may not be a member yet: the sign-in would give it the JIT membership.
          const member = decision.kind === 'linked' || decision.kind === 'link'
            ? ((await one<{ role: string }>(tx, sql`select role from memberships where org_id = ${flow.orgId} and user_id = ${decision.userId}`)) ?? null)
            : null;
          const result: TestResult = {
            claims: {
              issuer: identity.issuer, subject: identity.subject, email: identity.email, emailVerified: identity.emailVerified, name: identity.name, groups: identity.groups,
              attributes: outcome.attributes ?? null,
            },
            signIn: previewOf(decision, c, identity.groups, member),
          };
          sealed = await d.sealer.seal(tx, resultRef(flow.orgId, flow.testId), JSON.stringify(result));
        } else {
          reason = outcome.reason;
        }
        await exec(
          tx,
          sql`update sso_tests set status = ${sealed ? 'succeeded' : 'failed'}, finished_at = ${now}, result_sealed = ${sealed}, reason = ${reason}
              where org_id = ${flow.orgId} and id = ${flow.testId}`,
        );
        await d.audit.append(tx, flow.orgId, ctx, {
          action: 'sso.connection_tested', target: { type: 'sso_connection', id: run.connection_id }, actor: { type: 'user', id: run.started_by },
          // The outcome only: the claims stay in the sealed result.
          details: { testId: flow.testId, succeeded: sealed !== null, ...(reason ? { reason } : {}) },
        });
        return true;
      });
    },

    /** A run of the caller's, while it lasts. */
    async read(ctx: RequestContext, connectionId: string, testId: string): Promise<SsoTestView> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      return d.db.withTenant(bindingOf(ctx), async (tx) => {
        const r = await one<TestRow>(
          tx,
          sql`select id, connection_id, status, created_at, finished_at, result_sealed, reason from sso_tests
              where org_id = ${org.orgId} and id = ${testId} and connection_id = ${connectionId}
                and started_by = ${user.userId} and expires_at > ${d.clock.now().toISOString()}`,
        );
        if (!r) throw new AppError('not_found');
        const result = r.result_sealed ? (JSON.parse(await d.sealer.open(tx, resultRef(org.orgId, r.id), r.result_sealed)) as TestResult) : null;
        return {
          id: r.id, connectionId: r.connection_id, status: r.status, createdAt: r.created_at.toISOString(),
          finishedAt: r.finished_at ? r.finished_at.toISOString() : null, reason: r.reason,
          claims: result?.claims ? { ...result.claims, attributes: result.claims.attributes ?? null } : null, signIn: result?.signIn ?? null,
        };
      });
    },
  };
}

export type ConnectionTests = ReturnType<typeof createConnectionTests>;
