import { sql } from 'kysely';
import { newId } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import { userActorOf, type RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { type Database, exec, lockOrgCap, one, rows, type Tx, writeUnlessTaken } from '../../db/database.js';
import { bindingOf, requireOrg } from '../../db/binding.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import type { CredentialView, RotationView, UseView } from './responses.js';
import { MAX_CREDENTIALS_PER_ORG, secretProblem, type CredentialKind, type UseStatus } from './rules.js';
import { METADATA, valueRef, viewOf, type CredentialRow } from './store.js';

export interface CredentialDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
}

export interface NewCredential {
  name: string;
  kind: CredentialKind;
  description?: string | undefined;
  secret: string;
}

export interface Page {
  before?: number | undefined;
  limit: number;
}

const live = async (tx: Tx, orgId: string, id: string): Promise<CredentialRow> => {
  const r = await one<CredentialRow>(tx, sql`select ${METADATA} from integration_credentials where org_id = ${orgId} and id = ${id} and deleted_at is null`);
  if (!r) throw new AppError('not_found');
  return r;
};

/**
 * The vault as members manage it: metadata, writes and the two histories. Nothing here returns
 * or logs a value; opening one is the in-process vault's job (vault.ts).
 */
export function createCredentialService(deps: CredentialDeps) {
  const { db, audit, clock, sealer } = deps;

  // The service's own guard for callers other than the routes (which validate first).
  const checkSecret = (secret: string): void => {
    const problem = secretProblem(secret);
    if (problem) throw new AppError('validation_failed', undefined, [{ path: 'body.secret', message: problem }]);
  };

  return {
    async list(ctx: RequestContext): Promise<CredentialView[]> {
      const org = requireOrg(ctx);
      const list = await db.withTenant(bindingOf(ctx), (tx) =>
        rows<CredentialRow>(tx, sql`select ${METADATA} from integration_credentials where org_id = ${org.orgId} and deleted_at is null order by name`),
      );
      return list.map(viewOf);
    },

    async get(ctx: RequestContext, id: string): Promise<CredentialView> {
      const org = requireOrg(ctx);
      return viewOf(await db.withTenant(bindingOf(ctx), (tx) => live(tx, org.orgId, id)));
    },

    async create(ctx: RequestContext, input: NewCredential): Promise<CredentialView> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      checkSecret(input.secret);
      const id = newId();
      const now = clock.now().toISOString();
      return db.withTenant(bindingOf(ctx), async (tx) => {
        await lockOrgCap(tx, org.orgId, 'integration_credentials');
        const count = await one<{ n: number }>(tx, sql`select count(*)::int as n from integration_credentials where org_id = ${org.orgId} and deleted_at is null`);
        if ((count?.n ?? 0) >= MAX_CREDENTIALS_PER_ORG) throw new AppError('conflict', `an organization has at most ${MAX_CREDENTIALS_PER_ORG} integration credentials`);
        const sealed = await sealer.seal(tx, valueRef(org.orgId, id), input.secret);
        // Two creations of one name (a double click, a replayed request): the unique index lets one in.
        const inserted = await writeUnlessTaken(
          tx,
          sql`insert into integration_credentials (org_id, id, name, kind, description, secret_sealed, created_by, created_at, updated_at)
              values (${org.orgId}, ${id}, ${input.name}, ${input.kind}, ${input.description ?? ''}, ${sealed}, ${user.userId}, ${now}, ${now})`,
        );
        if (!inserted) throw new AppError('conflict', `the organization already has a credential named ${input.name}`);
        await exec(tx, sql`insert into integration_credential_rotations (org_id, credential_id, version, event, at, by_user)
                           values (${org.orgId}, ${id}, 1, 'created', ${now}, ${user.userId})`);
        await audit.append(tx, org.orgId, ctx, {
          action: 'credential.created', target: { type: 'integration_credential', id }, details: { name: input.name, kind: input.kind },
        });
        return viewOf(await live(tx, org.orgId, id));
      });
    },

    /** Rotation: a new value, sealed afresh, one more version with who and why. */
    async replace(ctx: RequestContext, id: string, input: { secret: string; reason: string }): Promise<CredentialView> {
      const org = requireOrg(ctx);
      const user = userActorOf(ctx);
      checkSecret(input.secret);
      const now = clock.now().toISOString();
      return db.withTenant(bindingOf(ctx), async (tx) => {
        const sealed = await sealer.seal(tx, valueRef(org.orgId, id), input.secret);
        // One statement finds, locks and bumps the row: concurrent replacements get distinct versions.
        const bumped = await one<{ version: number; name: string }>(
          tx,
          sql`update integration_credentials set secret_sealed = ${sealed}, version = version + 1, updated_at = ${now}
              where org_id = ${org.orgId} and id = ${id} and deleted_at is null returning version, name`,
        );
        if (!bumped) throw new AppError('not_found');
        await exec(tx, sql`insert into integration_credential_rotations (org_id, credential_id, version, event, at, by_user, reason)
                           values (${org.orgId}, ${id}, ${bumped.version}, 'replaced', ${now}, ${user.userId}, ${input.reason})`);
        await audit.append(tx, org.orgId, ctx, {
          action: 'credential.replaced', target: { type: 'integration_credential', id },
          details: { name: bumped.name, version: bumped.version, reason: input.reason },
        });
        return viewOf(await live(tx, org.orgId, id));
      });
    },

    async remove(ctx: RequestContext, id: string): Promise<void> {
      const org = requireOrg(ctx);
      await db.withTenant(bindingOf(ctx), async (tx) => {
        // The value goes at once; the row stays for the trail, the history and the use log.
        const gone = await one<{ name: string }>(
          tx,
          sql`update integration_credentials set deleted_at = ${clock.now().toISOString()}, secret_sealed = ''
              where org_id = ${org.orgId} and id = ${id} and deleted_at is null returning name`,
        );
        if (!gone) throw new AppError('not_found');
        await audit.append(tx, org.orgId, ctx, { action: 'credential.deleted', target: { type: 'integration_credential', id }, details: { name: gone.name } });
      });
    },

    async rotations(ctx: RequestContext, id: string, page: Page): Promise<{ rotations: RotationView[]; nextBefore: number | null }> {
      const org = requireOrg(ctx);
      return db.withTenant(bindingOf(ctx), async (tx) => {
        await live(tx, org.orgId, id);
        const list = await rows<{ version: number; event: 'created' | 'replaced'; at: Date; by_user: string; reason: string }>(
          tx,
          sql`select version, event, at, by_user, reason from integration_credential_rotations
              where org_id = ${org.orgId} and credential_id = ${id} and (${page.before ?? null}::bigint is null or version < ${page.before ?? null}::bigint)
              order by version desc limit ${page.limit + 1}`,
        );
        const shown = list.slice(0, page.limit);
        return {
          rotations: shown.map((r) => ({ version: r.version, event: r.event, at: r.at.toISOString(), by: r.by_user, reason: r.reason })),
          nextBefore: list.length > page.limit ? (shown.at(-1)?.version ?? null) : null,
        };
      });
    },

    async uses(ctx: RequestContext, id: string, page: Page): Promise<{ uses: UseView[]; nextBefore: number | null }> {
      const org = requireOrg(ctx);
      return db.withTenant(bindingOf(ctx), async (tx) => {
        await live(tx, org.orgId, id);
        const list = await rows<{ use_no: number | string; used_by: string; started_at: Date; finished_at: Date; status: UseStatus; message: string }>(
          tx,
          sql`select use_no, used_by, started_at, finished_at, status, message from integration_credential_uses
              where org_id = ${org.orgId} and credential_id = ${id} and (${page.before ?? null}::bigint is null or use_no < ${page.before ?? null}::bigint)
              order by use_no desc limit ${page.limit + 1}`,
        );
        const shown = list.slice(0, page.limit);
        return {
          uses: shown.map((u) => ({
            use: Number(u.use_no), by: u.used_by, startedAt: u.started_at.toISOString(), finishedAt: u.finished_at.toISOString(), status: u.status, message: u.message,
          })),
          nextBefore: list.length > page.limit ? Number(shown.at(-1)?.use_no) : null,
        };
      });
    },
  };
}

export type CredentialService = ReturnType<typeof createCredentialService>;
