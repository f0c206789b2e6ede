import pg from 'pg';
import { sql } from 'kysely';
import { Keyring, newId } from '../../src/crypto/index.js';
import { exec, type Database } from '../../src/db/database.js';
import { chainKeysFrom, createAuditWriter, verifyChain } from '../../src/domains/audit/index.js';
import { eventHash, GENESIS_HASH, headMac, type ChainedEvent } from '../../src/domains/audit/chain.js';
import { createApiKeyService, createKeyUsage } from '../../src/domains/api-keys/index.js';
import { createSealer } from '../../src/domains/keys/index.js';
import { createSessionService, createSessionTouches } from '../../src/domains/sessions/index.js';
import { systemClock } from '../../src/kernel/clock.js';
import { systemContext } from '../../src/kernel/context.js';
import { ALL_PERMISSIONS, BUILTIN_ROLE_PERMISSIONS, PermissionSet } from '../../src/kernel/permissions.js';
import { BENCH, dbUrl } from './env.js';

/** In-process permission checks per second (the check every request makes). */
export function permissionChecks(): number {
  const sets = Object.values(BUILTIN_ROLE_PERMISSIONS).map((p) => PermissionSet.of(p));
  const perms = ALL_PERMISSIONS;
  let hits = 0;
  const n = 20_000_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) if ((sets[i % sets.length] as PermissionSet).has(perms[i % perms.length] as (typeof perms)[number])) hits++;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  if (hits === 0) throw new Error('no permission held');
  return n / s;
}

async function timed(seconds: number, concurrency: number, op: (i: number) => Promise<void>): Promise<number> {
  const end = Date.now() + seconds * 1000;
  let done = 0;
  let i = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (Date.now() < end) {
        await op(i++);
        done++;
      }
    }),
  );
  return done / seconds;
}

/** What a secured mutation is made of, each step adding one part to the one before (ops/s). */
export interface MutationSteps {
  /** Autocommit insert into the bench's copy of the table (no RLS, no foreign key, one index). */
  plain: number;
  /** The same insert into Palisade's table in a tenant transaction: RLS, the project foreign key, two indexes. */
  tenant: number;
  /** …with its two fields sealed (AES-256-GCM with the org's data key). */
  sealed: number;
  /** …and the chained audit event (head lock, event row, head update): the secured mutation. */
  secured: number;
  /** The secured mutation by the same writers all in one org (one chain head). */
  oneOrg: number;
}

/**
 * Mutations by 16 writers spread over every org, from a plain insert to the secured one (2 sealed
 * fields + the chained audit event) one part at a time, then the secured one by 16 writers in one
 * org, whose appends queue on its chain head (issue 15: contention on the head, measured apart).
 */
export async function mutation(db: Database, targets: { orgId: string; projectId: string }[], seconds: number): Promise<MutationSteps> {
  const keyring = new Keyring([{ id: 'bench', key: Buffer.alloc(32, 3) }]);
  const sealer = createSealer(keyring);
  const audit = createAuditWriter({ db, clock: systemClock, keys: chainKeysFrom(keyring), sealer, onError: () => undefined });
  const ctx = systemContext('bench');
  const pool = new pg.Pool({ connectionString: dbUrl(), max: 16 });
  const at = (i: number) => targets[i % targets.length] as { orgId: string; projectId: string };
  const plain = await timed(seconds, 16, async (i) => {
    const { orgId, projectId } = at(i);
    await pool.query(`insert into bench.assets (org_id, project_id, id, name, kind, created_at) values ($1, $2, $3, $4, 'host', now())`,
      [orgId, projectId, newId(), `plain-${i}`]);
  });
  await pool.end();
  const steps = (pick: (i: number) => { orgId: string; projectId: string }, seal: boolean, audited: boolean) => timed(seconds, 16, async (i) => {
    const { orgId, projectId } = pick(i);
    const id = newId();
    await db.withTenant({ orgId, projectIds: null }, async (tx) => {
      const name = seal ? await sealer.seal(tx, { scope: orgId, table: 'assets', column: 'name', row: id }, `secret-name-${i}`) : `name-${i}`;
      const kind = seal ? await sealer.seal(tx, { scope: orgId, table: 'assets', column: 'kind', row: id }, 'host') : 'host';
      await exec(tx, sql`insert into assets (org_id, project_id, id, name, kind) values (${orgId}, ${projectId}, ${id}, ${name}, ${kind})`);
      if (audited) await audit.append(tx, orgId, ctx, { action: 'asset.created', target: { type: 'asset', id } });
    });
  });
  const tenant = await steps(at, false, false);
  const sealed = await steps(at, true, false);
  const secured = await steps(at, true, true);
  const first = at(0);
  const oneOrg = await steps(() => first, true, true);
  return { plain, tenant, sealed, secured, oneOrg };
}

/** Builds (once) a chain of BENCH.auditEvents events for a dedicated org, then times `audit verify`'s walk over it. */
export async function chainVerification(log: (s: string) => void): Promise<{ events: number; perSecond: number; ok: boolean }> {
  const keyring = new Keyring([{ id: 'bench', key: Buffer.alloc(32, 3) }]);
  const keys = chainKeysFrom(keyring);
  const c = new pg.Client({ connectionString: dbUrl() });
  await c.connect();
  const orgId = '00000000-0000-4000-8000-0000000a0d17';
  const have = (await c.query<{ n: number }>('select count(*)::int as n from audit_events where org_id = $1', [orgId])).rows[0]?.n ?? 0;
  if (have !== BENCH.auditEvents) {
    log(`building a chain of ${BENCH.auditEvents.toLocaleString()} audit events (once)`);
    await c.query('begin');
    await c.query('alter table audit_events disable trigger audit_events_append_only');
    await c.query('delete from audit_events where org_id = $1', [orgId]);
    await c.query('delete from audit_heads where org_id = $1', [orgId]);
    let prev = GENESIS_HASH;
    const t0 = Date.parse('2026-01-01T00:00:00Z');
    const batch = 5000;
    for (let start = 1; start <= BENCH.auditEvents; start += batch) {
      const cols: unknown[][] = Array.from({ length: 8 }, () => []);
      for (let seq = start; seq < start + batch && seq <= BENCH.auditEvents; seq++) {
        const e: ChainedEvent = {
          org_id: orgId, seq, id: newId(), at: new Date(t0 + seq * 1000).toISOString(), actor_type: 'user', actor_id: 'bench-user',
          actor_role: 'admin', action: 'asset.created', target_type: 'asset', target_id: `asset-${seq}`, result: 'success', ip: '10.0.0.1',
          user_agent: 'bench', request_id: `r${seq}`, details: { projectId: 'p', n: seq % 7 }, key_id: 'bench',
        };
        const hash = eventHash(keys, prev, e);
        const row = [e.seq, e.id, e.at, e.target_id, e.request_id, JSON.stringify(e.details), prev, hash];
        row.forEach((v, k) => (cols[k] as unknown[]).push(v));
        prev = hash;
      }
      await c.query(
        `insert into audit_events (org_id, seq, id, at, actor_type, actor_id, actor_role, action, target_type, target_id, result, ip, user_agent, request_id, details, key_id, prev_hash, hash)
         select $1, s, i, a, 'user', 'bench-user', 'admin', 'asset.created', 'asset', t, 'success', '10.0.0.1', 'bench', r, d::jsonb, 'bench', p, h
         from unnest($2::bigint[], $3::uuid[], $4::timestamptz[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[]) as x(s, i, a, t, r, d, p, h)`,
        [orgId, ...cols],
      );
    }
    const mac = headMac(keys, 'bench', { org_id: orgId, seq: BENCH.auditEvents, hash: prev });
    await c.query('insert into audit_heads (org_id, seq, hash, key_id, mac) values ($1, $2, $3, $4, $5)', [orgId, BENCH.auditEvents, prev, 'bench', mac]);
    await c.query('alter table audit_events enable trigger audit_events_append_only');
    await c.query('commit');
    // Fresh statistics, as autovacuum would have them: without, the planner sorts the chain.
    await c.query('analyze audit_events');
  }
  const q = async <R>(text: string, params?: unknown[]) => (await c.query(text, params)).rows as R[];
  const t = process.hrtime.bigint();
  const report = await verifyChain(q, keys, orgId, 'bench-audit');
  const s = Number(process.hrtime.bigint() - t) / 1e9;
  await c.end();
  return { events: report.events, perSecond: report.events / s, ok: report.ok };
}

export { dbUrl };

export interface VerificationCost {
  /** Mean time of one verification, one caller after another (µs). */
  sequentialUs: number;
  /** Verifications per second with 16 callers at once. */
  concurrentPerSecond: number;
}

/**
 * Authentication alone, in process, as the server runs it for an org-scoped read: a request
 * transaction (BEGIN + binding + the authentication statement in one message, then COMMIT)
 * around `sessions.verify` (cookie HMAC + palisade_session_in_org) or `apiKeys.authenticate`
 * (token checksum + SHA-256 + palisade_key_in_org). No HTTP, no query: what a credential costs.
 */
export async function verificationCost(
  db: Database,
  sessionTargets: { orgId: string; cookie: string }[],
  keyTargets: { orgId: string; token: string }[],
  seconds: number,
): Promise<{ session: VerificationCost; key: VerificationCost }> {
  const keyring = new Keyring([{ id: 'bench', key: Buffer.alloc(32, 3) }]);
  const audit = createAuditWriter({ db, clock: systemClock, keys: chainKeysFrom(keyring), sealer: createSealer(keyring), onError: () => undefined });
  const sessions = createSessionService({
    db, clock: systemClock, sealer: createSealer(keyring), secret: Buffer.from(BENCH.sessionSecret, 'base64'), idleSeconds: 1800, absoluteSeconds: 8 * 3600, touchIntervalSeconds: 60,
    touches: createSessionTouches({ db, onError: () => undefined }),
  });
  const usage = createKeyUsage({ db, onError: () => undefined });
  const apiKeys = createApiKeyService({ db, audit, clock: systemClock, usage });
  const ctx = systemContext('bench');
  const verifySession = async (i: number) => {
    const t = sessionTargets[i % sessionTargets.length] as { orgId: string; cookie: string };
    const v = await db.requestTransaction(() => sessions.verify(t.cookie, ctx, t.orgId));
    if (!v?.standing) throw new Error('bench session did not verify');
  };
  const verifyKey = async (i: number) => {
    const t = keyTargets[i % keyTargets.length] as { orgId: string; token: string };
    const v = await db.requestTransaction(() => apiKeys.authenticate(t.token, t.orgId, null));
    if (!v) throw new Error('bench key did not verify');
  };
  const half = seconds / 2;
  try {
    // Warm both (plans cached per connection), then alternate so that neither runs on a colder pool.
    await timed(1, 16, verifySession);
    await timed(1, 16, verifyKey);
    const s1 = await timed(half, 1, verifySession);
    const k1 = await timed(half, 1, verifyKey);
    const k16 = await timed(half, 16, verifyKey);
    const s16 = await timed(half, 16, verifySession);
    return {
      session: { sequentialUs: 1e6 / s1, concurrentPerSecond: s16 },
      key: { sequentialUs: 1e6 / k1, concurrentPerSecond: k16 },
    };
  } finally {
    await usage.close();
  }
}
