import { openDatabase } from '../../src/db/open.js';
import { createSessionService } from '../../src/domains/sessions/index.js';
import { systemClock } from '../../src/kernel/clock.js';
import { systemContext } from '../../src/kernel/context.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';
import type { BenchUser } from './dataset.js';
import { BENCH, dbUrl } from './env.js';
import type { Target } from './load.js';

/** One real Palisade session per bench user, issued with the server's session secret. */
export async function palisadeSessions(users: BenchUser[]): Promise<Target[]> {
  const { db, owner } = await openDatabase(
    { kind: 'postgres', ownerUrl: dbUrl(), runtimeUrl: dbUrl(BENCH.runtimeRole), runtimeRole: BENCH.runtimeRole, runtimePassword: null, poolSize: 4 },
    { migrate: false },
  );
  const sessions = createSessionService({
    db, clock: systemClock, secret: Buffer.from(BENCH.sessionSecret, 'base64'), idleSeconds: 1800, absoluteSeconds: 8 * 3600, touchIntervalSeconds: 60,
  });
  const targets: Target[] = [];
  for (const u of users) {
    const s = await db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => sessions.issue(tx, u.userId, systemContext('bench')));
    targets.push({ path: `/api/orgs/${u.orgId}/projects/${u.projectId}/assets?limit=20`, headers: { cookie: `__Host-palisade_session=${s.cookie}` }, project: u.projectId });
  }
  await db.close();
  await owner.close();
  return targets;
}
