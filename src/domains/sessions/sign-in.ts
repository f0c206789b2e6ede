import type { FastifyReply } from 'fastify';
import type { RequestContext } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import type { Database, Tx } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import type { AuditWriter } from '../audit/index.js';
import { setSessionCookie, type CookieSettings } from './cookie.js';
import type { SessionService } from './service.js';

export interface SignInDeps {
  db: Database;
  clock: Clock;
  audit: AuditWriter;
  sessions: SessionService;
  cookie: CookieSettings;
}

/**
 * Ends a sign-in proven with a second factor (or a passkey, which is two factors in one): a new
 * session id (the cookie the client brought is revoked, never reused), marked MFA-verified and
 * freshly stepped up. `consume` runs first in the same transaction (a pending sign-in token is
 * spent there: of two requests racing with one token, one gets a session).
 */
export async function finishSignIn(
  d: SignInDeps,
  ctx: RequestContext,
  reply: FastifyReply,
  userId: string,
  opts: { epoch?: number; method: string; consume?: (tx: Tx) => Promise<boolean> },
): Promise<void> {
  const cookies = (reply.request.cookies ?? {}) as Record<string, string | undefined>;
  const brought = cookies[d.cookie.name];
  const previous = brought ? await d.sessions.verify(brought, ctx).catch(() => null) : null;
  const issued = await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
    if (opts.consume && !(await opts.consume(tx))) throw new AppError('token_invalid');
    if (previous) await d.sessions.revokeById(tx, previous.actor.userId, previous.actor.session.id, 'replaced_by_login');
    const s = await d.sessions.issue(tx, userId, ctx, undefined, opts.epoch, { mfaVerified: true, steppedUpAt: d.clock.now() });
    await d.audit.append(tx, SYSTEM_ORG_ID, ctx, {
      action: 'auth.login', target: { type: 'session', id: s.id }, actor: { type: 'user', id: userId }, details: { secondFactor: opts.method },
    });
    return s;
  });
  setSessionCookie(reply, d.cookie, issued.cookie, d.sessions.absoluteSeconds);
}
