import { sql } from 'kysely';
import { ssoIdentityEmailRef, withPeople, type SealedPerson } from '../identity/people.js';
import { SealedValueError } from '../../crypto/index.js';
import { exec, one, rows, type Database, type Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import type { AuditWriter } from '../audit/index.js';
import { personalDigest, personalRef, type PersonalPart } from '../audit/writer.js';
import { normalEmail, type Sealer } from '../keys/sealer.js';
import { assertCanActOnCredentials, assertCanManage, bindingOf, requireOrg, type RoleKey } from './access.js';
import type { ErasureView, SubjectExportView } from './responses.js';
import { invitedAddress } from './invitations.js';

export interface SubjectDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  /** Wired to the sessions domain: a member's privileges changed (here: ended). */
  onPrivilegeChange(tx: Tx, userId: string): Promise<void>;
  /** Deletes the files of export archives an erasure withdrew (exports domain), after it committed. */
  removeArchives?(orgId: string, exportIds: readonly string[]): Promise<void>;
}

/** Audit events are opened in pages of this many (one key read per page and key). */
const PAGE = 1000;

interface Subject {
  id: string;
  email: string;
  name: string;
  created_at: Date;
  email_verified_at: Date | null;
  role: RoleKey;
  custom_role_id: string | null;
  custom_name: string | null;
  custom_permissions: string[] | null;
  restricted: boolean;
  joined_at: Date;
}

async function subjectIn(sealer: Sealer, tx: Tx, orgId: string, userId: string, lock: boolean): Promise<Subject> {
  const row = await one<Omit<Subject, 'email' | 'name'> & SealedPerson>(
    tx,
    sql`select u.id, u.email_sealed, u.name_sealed, u.created_at, u.email_verified_at, m.role, m.custom_role_id, cr.name as custom_name,
               cr.permissions as custom_permissions, m.restricted, m.created_at as joined_at
        from memberships m join users u on u.id = m.user_id
        left join custom_roles cr on cr.org_id = m.org_id and cr.id = m.custom_role_id
        where m.org_id = ${orgId} and m.user_id = ${userId} ${lock ? sql`for update of m` : sql``}`,
  );
  if (!row) throw new AppError('not_found');
  const [s] = await withPeople(sealer, tx, [row]);
  if (!s) throw new AppError('not_found');
  return s;
}

/**
 * Whether an opened audit event is about the subject: they acted, were acted on, or a value of
 * its details is their id or address (an invitation to them, a sign-in attempt by address).
 * Whole values only: an id or address written into free text (a name, a reason) does not make
 * an event theirs, or an owner could erase their own actions' evidence by naming someone.
 */
function mentions(actorId: string | null, targetId: string | null, details: unknown, s: { id: string; email: string }): boolean {
  if (actorId === s.id || targetId === s.id) return true;
  const theirs = (v: unknown): boolean =>
    typeof v === 'string' ? v.toLowerCase() === s.id || normalEmail(v) === normalEmail(s.email) : Array.isArray(v) && v.some(theirs);
  return typeof details === 'object' && details !== null && Object.values(details).some(theirs);
}

interface EventRow {
  seq: string | number;
  id: string;
  at: Date;
  actor_id: string | null;
  actor_type: string;
  action: string;
  target_type: string | null;
  target_id: string | null;
  result: string;
  details: unknown;
  personal_sealed: string | null;
}

/**
 * Walks `orgId`'s sealed audit events in pages, opening each part (checked against the digest
 * the chain holds) and calling `visit` with those about the subject. The caller's transaction is
 * bound to the org. Events with no sealed part (written before migration 034, or already erased)
 * are matched on actor and target alone.
 */
async function eventsAbout(
  deps: Pick<SubjectDeps, 'sealer'>, tx: Tx, orgId: string, s: { id: string; email: string },
  visit: (r: EventRow, part: PersonalPart | null) => Promise<void> | void,
): Promise<void> {
  const open = deps.sealer.opener(tx);
  let after = -1;
  for (;;) {
    const page = await rows<EventRow>(
      tx,
      sql`select seq, id, at, actor_id, actor_type, action, target_type, target_id, result, details, personal_sealed
          from audit_events where org_id = ${orgId} and seq > ${after} order by seq limit ${PAGE}`,
    );
    for (const r of page) {
      let part: PersonalPart | null = null;
      if (r.personal_sealed) {
        try {
          const text = await open(personalRef(orgId, r.id), r.personal_sealed);
          const digest = (r.details as { sealed?: unknown } | null)?.sealed;
          part = personalDigest(text) === digest ? (JSON.parse(text) as PersonalPart) : null;
        } catch (err) {
          if (!(err instanceof SealedValueError)) throw err;
          part = null; // its key is gone or the value was tampered with: nothing to read, nothing to hand over
        }
      }
      if (mentions(r.actor_id, r.target_id, part ? part.details : r.details, s)) await visit(r, part);
    }
    if (page.length < PAGE) return;
    after = Number(page[page.length - 1]?.seq);
  }
}

/**
 * Destroys the sealed personal part of every event of `orgId` about the subject (the caller's
 * transaction is bound to it) and returns their ids for the clear erasure event the caller must
 * append in the same transaction: `audit verify` accepts a part gone only where one names it.
 */
async function eraseParts(deps: Pick<SubjectDeps, 'sealer'>, tx: Tx, orgId: string, s: { id: string; email: string }): Promise<string[]> {
  const ids: string[] = [];
  await eventsAbout(deps, tx, orgId, s, (r) => {
    if (r.personal_sealed) ids.push(r.id);
  });
  if (ids.length > 0) await exec(tx, sql`update audit_events set personal_sealed = null where org_id = ${orgId} and id = any(${ids}::uuid[])`);
  return ids;
}

/**
 * Data-subject requests an org answers about one of its members (GDPR art. 15 and 17, where the
 * org is the controller and Palisade its processor): everything the org holds about them, and
 * their erasure from it. What is not the org's to hand over or erase (the account's sessions and
 * factors while the person belongs to other orgs, other orgs' records) is left, and said so.
 */
export function createSubjectService(deps: SubjectDeps) {
  const { db, audit, clock } = deps;
  return {
    async exportOf(ctx: RequestContext, userId: string): Promise<SubjectExportView> {
      const org = requireOrg(ctx);
      if (!(await assertCanActOnCredentials(db, org, userActorOf(ctx).userId, userId, 'export the personal data of'))) throw new AppError('not_found');
      return db.withTenant(bindingOf(ctx), async (tx) => {
        const s = await subjectIn(deps.sealer, tx, org.orgId, userId, false);
        const projects = await rows<{ id: string; name: string }>(
          tx, sql`select p.id, p.name from project_access pa join projects p on p.org_id = pa.org_id and p.id = pa.project_id
                  where pa.org_id = ${org.orgId} and pa.user_id = ${userId} order by p.name`,
        );
        const keys = await rows<{ id: string; name: string; created_at: Date; expires_at: Date | null; last_used_at: Date | null; revoked_at: Date | null }>(
          tx, sql`select id, name, created_at, expires_at, last_used_at, revoked_at from api_keys
                  where org_id = ${org.orgId} and created_by = ${userId} order by created_at`,
        );
        const ssoRows = await rows<{ id: string; issuer: string; subject: string; email_sealed: string | null; linked_at: Date; last_sign_in_at: Date | null }>(
          tx, sql`select id, issuer, subject, email_sealed, linked_at, last_sign_in_at from sso_identities
                  where org_id = ${org.orgId} and user_id = ${userId} order by linked_at`,
        );
        const openLink = deps.sealer.opener(tx);
        const sso: ((typeof ssoRows)[number] & { email: string })[] = [];
        for (const i of ssoRows) sso.push({ ...i, email: i.email_sealed ? await openLink(ssoIdentityEmailRef(org.orgId, i.id), i.email_sealed) : '' });
        const invitations = await rows<{ id: string; role: string; created_at: Date; expires_at: Date; accepted_at: Date | null; revoked_at: Date | null }>(
          tx, sql`select id, role, created_at, expires_at, accepted_at, revoked_at from invitations
                  where org_id = ${org.orgId} and ${await invitedAddress(deps.sealer, tx, org.orgId, s.email)} order by created_at`,
        );
        const events: SubjectExportView['auditEvents'] = [];
        await eventsAbout(deps, tx, org.orgId, s, (r, part) => {
          const sealed = r.personal_sealed !== null;
          events.push({
            seq: Number(r.seq), id: r.id, at: r.at.toISOString(), action: r.action, result: r.result,
            actor: { type: r.actor_type, id: r.actor_id }, target: r.target_type && r.target_id ? { type: r.target_type, id: r.target_id } : null,
            // The address and browser are the actor's: theirs only when they acted.
            ...(r.actor_id === userId ? { ip: part?.ip ?? '', userAgent: part?.userAgent ?? '' } : { ip: '', userAgent: '' }),
            details: part ? part.details : sealed ? {} : (r.details as Record<string, unknown>),
          });
        });
        await audit.append(tx, org.orgId, ctx, {
          action: 'member.data_exported', target: { type: 'user', id: userId }, details: { auditEvents: events.length },
        });
        return {
          exportedAt: clock.now().toISOString(),
          org: { id: org.orgId },
          user: { id: s.id, email: s.email, name: s.name, createdAt: s.created_at.toISOString(), emailVerifiedAt: s.email_verified_at?.toISOString() ?? null },
          membership: {
            role: s.role, customRole: s.custom_role_id ? { id: s.custom_role_id, name: s.custom_name ?? '' } : null,
            restricted: s.restricted, joinedAt: s.joined_at.toISOString(), projects,
          },
          apiKeys: keys.map((k) => ({
            id: k.id, name: k.name, createdAt: k.created_at.toISOString(), expiresAt: k.expires_at?.toISOString() ?? null,
            lastUsedAt: k.last_used_at?.toISOString() ?? null, revokedAt: k.revoked_at?.toISOString() ?? null,
          })),
          ssoIdentities: sso.map((i) => ({ issuer: i.issuer, subject: i.subject, email: i.email, linkedAt: i.linked_at.toISOString(), lastSignInAt: i.last_sign_in_at?.toISOString() ?? null })),
          invitations: invitations.map((i) => ({
            id: i.id, role: i.role, createdAt: i.created_at.toISOString(), expiresAt: i.expires_at.toISOString(),
            acceptedAt: i.accepted_at?.toISOString() ?? null, revokedAt: i.revoked_at?.toISOString() ?? null,
          })),
          auditEvents: events,
          notIncluded: NOT_INCLUDED,
        };
      });
    },

    async erase(ctx: RequestContext, userId: string, confirm: string): Promise<ErasureView> {
      const org = requireOrg(ctx);
      const actorId = userActorOf(ctx).userId;
      if (userId === actorId) throw new AppError('validation_failed', 'you cannot erase yourself: leave the organization, or ask another owner');
      if (!(await assertCanActOnCredentials(db, org, actorId, userId, 'erase'))) throw new AppError('not_found');
      const result = await db.withTenant(bindingOf(ctx), async (tx) => {
        await exec(tx, sql`select user_id from memberships where org_id = ${org.orgId} and role = 'owner' order by user_id for update`);
        const s = await subjectIn(deps.sealer, tx, org.orgId, userId, true);
        assertCanManage(org, { role: s.role, customPermissions: s.custom_permissions }, 'erase');
        if (confirm.trim().toLowerCase() !== s.email.toLowerCase()) {
          throw new AppError('validation_failed', 'to confirm, type the member\u2019s email address (letter case aside)', [{ path: 'confirm', message: 'does not match the member\u2019s email address' }]);
        }
        // An owner's erasure would destroy the evidence of their owner actions and, with their
        // account, reach every org they own: they are demoted first (which other owners see).
        if (s.role === 'owner') throw new AppError('conflict', 'an owner is not erased: change their role first');
        const now = clock.now().toISOString();
        const erased = await eraseParts(deps, tx, org.orgId, s);
        const keys = await exec(tx, sql`update api_keys set revoked_at = ${now}, revoked_by = ${actorId}
                                        where org_id = ${org.orgId} and created_by = ${userId} and revoked_at is null`);
        await exec(tx, sql`delete from project_access where org_id = ${org.orgId} and user_id = ${userId}`);
        const sso = await exec(tx, sql`delete from sso_identities where org_id = ${org.orgId} and user_id = ${userId}`);
        const invitations = await exec(tx, sql`delete from invitations where org_id = ${org.orgId} and ${await invitedAddress(deps.sealer, tx, org.orgId, s.email)}`);
        // Copies the org holds elsewhere: webhook payloads naming them (delivered or not) are
        // emptied, and its export archives, which hold them too, are withdrawn.
        // The address as a whole JSON string (member@x is not restricted-member@x), no LIKE patterns.
        await exec(tx, sql`update webhook_deliveries set payload = ${JSON.stringify({ erased: true })}
                           where org_id = ${org.orgId} and (strpos(lower(payload), ${s.id}) > 0 or strpos(lower(payload), ${JSON.stringify(normalEmail(s.email))}) > 0)`);
        const withdrawn = await rows<{ id: string }>(tx, sql`update org_exports set state = case when state = 'done' then 'expired' else 'failed' end
                                                              where org_id = ${org.orgId} and state in ('queued', 'running', 'done') returning id`);
        await deps.onPrivilegeChange(tx, userId);
        // The membership goes; the account too when no other org holds the person (migration
        // 035: the one way the runtime role deletes a user), and with it, by foreign keys, every
        // session, factor, recovery code, passkey, reset, magic link and linked identity, and the
        // mail queued to them. Sessions and factors are the account's: no org ends them for another.
        const gone = await one<{ account: 'deleted' | 'kept' }>(tx, sql`select palisade_erase_member(${org.orgId}, ${userId}) as account`);
        const deleteAccount = gone?.account === 'deleted';
        // In clear and chained: `audit verify` accepts a removed part only when an erasure names it.
        await audit.append(tx, org.orgId, ctx, {
          action: 'member.erased', target: { type: 'user', id: userId }, clear: true,
          details: { account: deleteAccount ? 'deleted' : 'kept', erasedEvents: erased, apiKeysRevoked: keys, ssoIdentities: sso, invitations, exportsWithdrawn: withdrawn.length },
        });
        return { email: s.email, withdrawn: withdrawn.map((w) => w.id), view: { account: deleteAccount ? 'deleted' as const : 'kept' as const, auditEventsErased: erased.length, apiKeysRevoked: keys, ssoIdentitiesRemoved: sso, invitationsRemoved: invitations } };
      });
      // The account's own trail (sign-ins recorded in the system chain): the person is gone from
      // every org, so nothing there is any org's record any more.
      if (result.view.account === 'deleted') {
        result.view.auditEventsErased += await db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
          const ids = await eraseParts(deps, tx, SYSTEM_ORG_ID, { id: userId, email: result.email });
          await audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'user.erased', target: { type: 'user', id: userId }, clear: true, details: { erasedEvents: ids } });
          return ids.length;
        });
      }
      await deps.removeArchives?.(org.orgId, result.withdrawn);
      return result.view;
    },
  };
}

/** What a member's export leaves out, and why: part of the document, so the reader knows. */
const NOT_INCLUDED = [
  'sessions, second factors and passkeys: they belong to the person\u2019s account, which may serve other organizations; the person sees them in their own security page',
  'password, recovery codes and API key secrets: stored only as one-way hashes',
  'audit events of other organizations and of the account before joining this one',
  'audit events whose sealed part can no longer be opened (an earlier erasure, or a destroyed data key)',
];

export type SubjectService = ReturnType<typeof createSubjectService>;
