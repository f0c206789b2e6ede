import type { Clock } from '../../kernel/clock.js';
import type { Database, Tx } from '../../db/database.js';
import type { RequestContext } from '../../kernel/context.js';
import type { AuditWriter } from '../audit/index.js';
import type { MailPort } from '../mail/index.js';
import type { Sealer } from '../keys/sealer.js';

export interface TenancyDeps {
  db: Database;
  audit: AuditWriter;
  /** Seals invitation addresses with the org's data key, and indexes them (blind index). */
  sealer: Sealer;
  clock: Clock;
  mail: MailPort;
  publicOrigin: string;
  /**
   * A member's privileges changed: their sessions must rotate (wired to the sessions domain).
   * Lock order everywhere: sessions before the audit head, so call this before audit.append.
   */
  onPrivilegeChange(tx: Tx, userId: string): Promise<void>;
  /** A project is about to be deleted (wired to the API keys bound to it, which are revoked). */
  onProjectDeleted?(tx: Tx, ctx: RequestContext, orgId: string, projectId: string): Promise<void>;
  /**
   * SSO enforcement (sso/enforcement.ts): whether the user may act on a session opened the way
   * `session` was (accepting an invitation is joining by a local credential otherwise).
   */
  sessionAllowed?(tx: Tx, userId: string, sessionId: string): Promise<void>;
}
