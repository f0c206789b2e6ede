import { sql } from 'kysely';
import type { Clock } from '../../kernel/clock.js';
import { systemContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { isUuid } from '../../kernel/ids.js';
import { exec, one, type Database } from '../../db/database.js';
import type { AuditWriter } from '../audit/index.js';
import type { Sealer } from '../keys/index.js';
import { assertCaller, assertName, cleanMessage, type UseStatus } from './rules.js';
import { valueRef } from './store.js';

/** What the callback of `use` may report about its work: the use log's status and message. */
export interface UseReport {
  /** A short result for the use log ("synced 42 tickets"); the last one given is kept. */
  note(message: string): void;
  /** Records the use as failed (a rejected token, a partial sync) without throwing. */
  fail(message?: string): void;
}

export interface VaultDeps {
  db: Database;
  audit: AuditWriter;
  clock: Clock;
  sealer: Sealer;
  /** A use whose outcome could not be written to the log (the use itself is counted and audited already). */
  onError: (err: unknown) => void;
}

/**
 * The in-process side of the vault: the only way a credential's value leaves the database.
 * Host code names the credential and says who it is; the vault opens it in a transaction bound
 * to the org (RLS), counts the use and audits it in that same transaction, then hands the value
 * to the callback outside it (a sync may take minutes; no connection is held meanwhile), and
 * finally logs how the callback ended.
 */
export function createVault(deps: VaultDeps) {
  const { db, audit, clock, sealer } = deps;

  return {
    async use<T>(orgId: string, name: string, opts: { by: string }, fn: (secret: string, report: UseReport) => Promise<T>): Promise<T> {
      assertName(name);
      assertCaller(opts.by);
      const missing = (): AppError => new AppError('not_found', `the organization has no integration credential named ${name} (never added, or deleted)`);
      if (!isUuid(orgId)) throw missing();
      const org = orgId.toLowerCase();
      const by = opts.by;
      const ctx = systemContext(`vault:${by}`);
      const startedAt = clock.now();

      const opened = await db.withTenant({ orgId: org }, async (tx) => {
        // One statement finds the live credential and counts the use: concurrent uses get distinct numbers.
        const row = await one<{ id: string; secret_sealed: string; use_count: number | string }>(
          tx,
          sql`update integration_credentials set use_count = use_count + 1, last_used_at = ${startedAt.toISOString()}, last_used_by = ${by}
              where org_id = ${org} and name = ${name} and deleted_at is null
                -- An org being deleted uses none of its credentials (nothing else in it can be used either).
                and not exists (select 1 from organizations o where o.org_id = ${org} and (o.purge_after is not null or o.shredded_at is not null))
              returning id, secret_sealed, use_count`,
        );
        if (!row) throw missing();
        // A value that does not open (a destroyed key, a tampered row) rolls the count back with it.
        const secret = await sealer.open(tx, valueRef(org, row.id), row.secret_sealed);
        const useNo = Number(row.use_count);
        await audit.append(tx, org, ctx, {
          action: 'credential.used', actor: { type: 'integration', id: by }, target: { type: 'integration_credential', id: row.id },
          details: { name, by, use: useNo },
        });
        return { id: row.id, secret, useNo };
      });

      let status: UseStatus = 'ok';
      let message = '';
      const report: UseReport = {
        note: (m) => { message = m; },
        fail: (m) => { status = 'failed'; if (m !== undefined) message = m; },
      };
      const log = async (): Promise<void> => {
        try {
          await db.withTenant({ orgId: org }, (tx) =>
            exec(tx, sql`insert into integration_credential_uses (org_id, credential_id, use_no, used_by, started_at, finished_at, status, message)
                         values (${org}, ${opened.id}, ${opened.useNo}, ${by}, ${startedAt.toISOString()}, ${clock.now().toISOString()},
                                 ${status}, ${cleanMessage(message, opened.secret)})`),
          );
        } catch (err) {
          deps.onError(err);
        }
      };
      try {
        const result = await fn(opened.secret, report);
        await log();
        return result;
      } catch (err) {
        status = 'failed';
        // The error's own text may quote the value in a form no redaction recognises (a URL, a
        // Basic header): only its class name is logged unless the host reported a message.
        if (!message) message = `failed: ${err instanceof Error ? err.name : 'thrown value'}`;
        await log();
        throw err;
      }
    },
  };
}

export type Vault = ReturnType<typeof createVault>;
