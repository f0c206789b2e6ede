import type { Database } from './db/database.js';
import { SYSTEM_ORG_ID } from './kernel/ids.js';
import type { Authenticators } from './http/pipeline.js';
import type { Metrics } from './http/metrics.js';
import type { ApiKeyService } from './domains/api-keys/index.js';
import type { AuditWriter } from './domains/audit/index.js';
import { setSessionCookie, type CookieSettings, type SessionService } from './domains/sessions/index.js';

/**
 * The verifiers the request pipeline is handed (http/ knows no domain): the session cookie for
 * console routes, the API key for `/v1`, and the audit record of a refusal. Here rather than in
 * http/ because each one calls a domain service.
 */
export function createAuthenticators(deps: {
  db: Pick<Database, 'requestTransaction'>;
  sessions: SessionService;
  apiKeys: Pick<ApiKeyService, 'authenticate'>;
  audit: Pick<AuditWriter, 'appendStandalone'>;
  cookie: CookieSettings;
  metrics: Metrics;
}): Authenticators {
  const { db, sessions, apiKeys, audit, cookie, metrics } = deps;
  return {
    async session(request, reply, ctx, orgId) {
      const value = (request.cookies as Record<string, string | undefined>)[cookie.name];
      const verified = await sessions.verify(value, ctx, orgId ?? undefined);
      if (!verified) {
        metrics.authFailures.inc({ kind: value ? 'session_invalid' : 'no_credential' });
        return null;
      }
      if (verified.rotatedCookie) setSessionCookie(reply, cookie, verified.rotatedCookie, sessions.absoluteSeconds);
      const standing = verified.standing ?? null;
      if (standing) {
        sessions.assertOrgPolicy(verified.actor.session, standing.policy);
        sessions.touchForPolicy(verified.actor.session, standing.policy);
      }
      return { actor: verified.actor, access: standing?.access ?? null };
    },
    async key(request, _ctx, orgId) {
      const header = request.headers.authorization;
      const m = typeof header === 'string' ? /^Bearer ([A-Za-z0-9_]{1,100})$/i.exec(header) : null;
      if (!m || !orgId) {
        metrics.authFailures.inc({ kind: header ? 'key_invalid' : 'no_credential' });
        return null;
      }
      const origin = typeof request.headers.origin === 'string' ? request.headers.origin : null;
      const verified = await apiKeys.authenticate(m[1] as string, orgId, origin);
      if (!verified) metrics.authFailures.inc({ kind: 'key_invalid' });
      return verified;
    },
    readScope: (fn) => db.requestTransaction(fn),
    async denied(ctx, route, reason) {
      metrics.authFailures.inc({ kind: `denied_${reason}` });
      const params = { route: `${route.method} ${route.url}`, reason };
      // A non-member's probe is evidence for the operator, not for the org it probed.
      if (reason === 'not_member' || !ctx.org) {
        await audit.appendStandalone(SYSTEM_ORG_ID, ctx, { action: 'authz.denied', result: 'denied', details: params });
      } else {
        await audit.appendStandalone(ctx.org.orgId, ctx, { action: 'authz.denied', result: 'denied', details: params });
      }
    },
  };
}
