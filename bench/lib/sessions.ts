import { Keyring, parseKeks } from '../../src/crypto/index.js';
import { openDatabase, type OpenedDatabase } from '../../src/db/open.js';
import { createSealer } from '../../src/domains/keys/index.js';
import { createSessionService, createSessionTouches, type SessionService } from '../../src/domains/sessions/index.js';
import { systemClock } from '../../src/kernel/clock.js';
import { systemContext } from '../../src/kernel/context.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';
import type { BenchUser } from './dataset.js';
import { BENCH, dbUrl } from './env.js';
import type { Target } from './load.js';

const SESSION_COOKIE = '__Host-palisade_session';

/** The bench database as the server's runtime role sees it, and a session service with the server's secret. */
async function withSessions<T>(fn: (opened: OpenedDatabase, sessions: SessionService) => Promise<T>): Promise<T> {
  const opened = await openDatabase(
    { kind: 'postgres', ownerUrl: dbUrl(), runtimeUrl: dbUrl(BENCH.runtimeRole), runtimeRole: BENCH.runtimeRole, runtimePassword: null, poolSize: 4 },
    { migrate: false },
  );
  const sessions = createSessionService({
    // The server's KEK (BENCH.kek): the session's client is sealed under the system scope both use.
    db: opened.db, clock: systemClock, sealer: createSealer(new Keyring(parseKeks(BENCH.kek))), secret: Buffer.from(BENCH.sessionSecret, 'base64'),
    idleSeconds: 1800, absoluteSeconds: 8 * 3600, touchIntervalSeconds: 60,
    // Only issues sessions: nothing is touched here.
    touches: createSessionTouches({ db: opened.db, onError: () => undefined }),
  });
  try {
    return await fn(opened, sessions);
  } finally {
    await opened.db.close();
    await opened.owner.close();
  }
}

/** The path of the protected read: the same route for sessions (/api) and API keys (/v1). */
export function assetsPath(prefix: '/api' | '/v1', u: BenchUser): string {
  return `${prefix}/orgs/${u.orgId}/projects/${u.projectId}/assets?limit=20`;
}

/** One real Palisade session per bench user, issued with the server's session secret. */
export async function palisadeSessions(users: BenchUser[]): Promise<Target[]> {
  return withSessions(async ({ db }, sessions) => {
    const targets: Target[] = [];
    for (const u of users) {
      const s = await db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => sessions.issue(tx, u.userId, systemContext('bench')));
      targets.push({ path: assetsPath('/api', u), headers: { cookie: `${SESSION_COOKIE}=${s.cookie}` }, project: u.projectId });
    }
    return targets;
  });
}

const KEY_NAME = 'bench read';

/**
 * One real secret API key per bench user, created the way a person creates one: through the
 * console route of the running server (`POST /api/orgs/:orgId/api-keys`, a session with a fresh
 * step-up), scoped to what the read needs: `assets:read`, bound to the user's project. The keys
 * of earlier runs are revoked first (console routes too), so reruns on the reused data set stay
 * under the active-key caps; keys also expire after a day.
 */
export async function palisadeKeys(base: string, users: BenchUser[]): Promise<Target[]> {
  return withSessions(async ({ db }, sessions) => {
    const targets: Target[] = [];
    const expiresAt = new Date(Date.now() + 86_400_000).toISOString();
    for (const u of users) {
      const s = await db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
        sessions.issue(tx, u.userId, systemContext('bench'), { proof: { mfaVerified: false, steppedUpAt: new Date() } }),
      );
      const headers = { cookie: `${SESSION_COOKIE}=${s.cookie}`, origin: BENCH.publicOrigin };
      const listed = await fetch(`${base}/api/orgs/${u.orgId}/api-keys`, { headers });
      if (listed.status !== 200) throw new Error(`listing ${u.email}'s API keys failed: ${listed.status} ${await listed.text()}`);
      const { keys } = (await listed.json()) as { keys: { id: string; name: string; status: string; createdBy: string }[] };
      for (const k of keys.filter((k2) => k2.name === KEY_NAME && k2.status === 'active' && k2.createdBy === u.userId)) {
        const revoked = await fetch(`${base}/api/orgs/${u.orgId}/api-keys/${k.id}`, { method: 'DELETE', headers });
        if (revoked.status !== 204) throw new Error(`revoking an earlier bench key failed: ${revoked.status} ${await revoked.text()}`);
      }
      const res = await fetch(`${base}/api/orgs/${u.orgId}/api-keys`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ name: KEY_NAME, kind: 'secret', permissions: ['assets:read'], projectId: u.projectId, expiresAt }),
      });
      if (res.status !== 201) throw new Error(`API key creation for ${u.email} failed: ${res.status} ${await res.text()}`);
      const { token } = (await res.json()) as { token: string };
      targets.push({ path: assetsPath('/v1', u), headers: { authorization: `Bearer ${token}` }, project: u.projectId });
    }
    return targets;
  });
}
