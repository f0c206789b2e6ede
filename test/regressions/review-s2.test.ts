/**
 * Attacker review, session 2: the signed-in read path (one request transaction, f012475) and
 * passkeys (1ea3d0c).
 *
 * Each "[review S2 …, fixed]" test demonstrated a confirmed problem (it failed against the code
 * as reviewed) and now holds the fix; "[SOUND …]" tests pin down an attack that was tried and
 * refused. Fixes: src/db/pinned.ts (finished state, aborted-call recovery),
 * src/domains/identity/factors.ts (settleFactors), passkeys.ts (cap under lock, refusals audited).
 */
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import { one, rows, type Database } from '../../src/db/database.js';
import { openDatabase, type OpenedDatabase } from '../../src/db/open.js';
import { MAX_PASSKEYS } from '../../src/domains/identity/passkeys.js';
import { call, code, enrollTotp, freshOrg, login, passwordUser, sessionFrom } from '../account-protection/support.js';
import { seedSmallOrg } from '../isolation/fixtures.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { SoftAuthenticator } from '../support/authenticator.js';
import { createTestDatabase, ENGINES, TEST_RUNTIME_ROLE, type TestDatabase } from '../support/db.js';
import { as, newUser } from './helpers.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RP_ID = new URL(ORIGIN).hostname;

type Json = Record<string, unknown>;
const json = (r: LightMyRequestResponse) => r.json<Json>();

/** Adds a passkey through the API (registration options + attestation) on `cookie`'s session. */
async function addPasskey(h: TestApp, cookie: string, auth: SoftAuthenticator, name = 'Laptop'): Promise<LightMyRequestResponse> {
  const o = await call(h, 'POST', '/api/me/passkeys/registration-options', { cookie });
  if (o.statusCode !== 200) return o;
  const { ceremonyToken, options } = json(o) as { ceremonyToken: string; options: never };
  return call(h, 'POST', '/api/me/passkeys', { cookie, payload: { ceremonyToken, name, response: auth.create(options) } });
}

async function passkeyIds(h: TestApp, cookie: string): Promise<string[]> {
  return ((json(await call(h, 'GET', '/api/me/passkeys', { cookie })).passkeys ?? []) as { id: string }[]).map((p) => p.id);
}

// ---------------------------------------------------------------------------------------------
// Piece 2: passkeys
// ---------------------------------------------------------------------------------------------

describe.each(ENGINES)('review s2 — passkeys on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  /** An org requiring MFA now (grace 0), its owner enrolled with TOTP. */
  async function mfaOrg(): Promise<string> {
    const { orgId, owner } = await freshOrg(h);
    const { cookie } = await enrollTotp(h, owner);
    const res = await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie, payload: { mfaRequired: true, mfaGraceDays: 0 } });
    expect(res.statusCode, res.body).toBe(200);
    return orgId;
  }

  it('[review S2 P2-1, fixed] removing the last passkey turns MFA off but leaves the session MFA-verified: an MFA-required org still lets a member with no factor in', async () => {
    const orgId = await mfaOrg();
    const m = await passwordUser(h, orgId, 'member');
    const cookie = await h.cookieFor(m.email);
    expect(code(await call(h, 'GET', `/api/orgs/${orgId}`, { cookie }))).toBe('mfa_enrollment_required');

    const auth = new SoftAuthenticator(RP_ID, ORIGIN);
    expect((await addPasskey(h, cookie, auth)).statusCode).toBe(201);
    expect((await call(h, 'GET', `/api/orgs/${orgId}`, { cookie })).statusCode).toBe(200);

    // The only factor goes (the registration's step-up is still fresh).
    const [id] = await passkeyIds(h, cookie);
    expect((await call(h, 'DELETE', `/api/me/passkeys/${id}`, { cookie })).statusCode).toBe(204);
    expect(json(await call(h, 'GET', '/api/me/mfa', { cookie }))).toMatchObject({ enabled: false, passkeys: 0, totp: false });

    // Turning the authenticator app off clears mfa_verified (mfa.ts disable); removing the last
    // passkey does not, so the org's MFA requirement is met by a member who has no factor at all.
    const after = await call(h, 'GET', `/api/orgs/${orgId}`, { cookie });
    expect(after.statusCode, after.body).toBe(403);
    expect(code(after)).toBe('mfa_enrollment_required');
  });

  it('[review S2 P2-2, fixed] recovery codes outlive MFA turned off by removing the last passkey, and come back into force with the next passkey', async () => {
    const u = await passwordUser(h);
    const cookie = await h.cookieFor(u.email);
    const auth = new SoftAuthenticator(RP_ID, ORIGIN);
    expect((await addPasskey(h, cookie, auth, 'Old')).statusCode).toBe(201);
    const gen = await call(h, 'POST', '/api/me/mfa/recovery-codes', { cookie });
    expect(gen.statusCode, gen.body).toBe(200);
    const { recoveryCodes } = json(gen) as { recoveryCodes: string[] };

    const [id] = await passkeyIds(h, cookie);
    expect((await call(h, 'DELETE', `/api/me/passkeys/${id}`, { cookie })).statusCode).toBe(204);
    const status = json(await call(h, 'GET', '/api/me/mfa', { cookie }));
    expect(status.enabled).toBe(false);
    // MFA is off; POST /api/me/mfa/disable would have deleted the codes here. They stay:
    expect.soft(status.recoveryCodesLeft, 'recovery codes left while MFA is off').toBe(0);

    // Months later the user adds a new passkey: the old printed codes are second factors again.
    expect((await addPasskey(h, cookie, new SoftAuthenticator(RP_ID, ORIGIN), 'New')).statusCode).toBe(201);
    const pending = await login(h, u.email, u.password);
    const { mfaToken, methods } = json(pending) as { mfaToken: string; methods: string[] };
    expect.soft(methods).toEqual(['passkey']);
    const res = await call(h, 'POST', '/api/auth/mfa/verify', { payload: { mfaToken, recoveryCode: recoveryCodes[0] } });
    expect(res.statusCode, 'a recovery code issued before MFA was turned off must not complete a sign-in').toBe(401);
  });

  it(`[review S2 P2-3, fixed] the ${MAX_PASSKEYS}-passkey cap is checked when options are issued, not when the passkey is added`, async () => {
    const u = await passwordUser(h);
    const cookie = await h.cookieFor(u.email);
    for (let i = 0; i < MAX_PASSKEYS - 1; i++) {
      await h.t.owner.query(
        `insert into passkeys (id, user_id, credential_id, public_key, counter, transports, name, created_at)
         values ($1, $2, $3, '\\x00', 0, '{}', $4, now())`,
        [newId(), u.id, `filler-${newId()}`, `filler ${i}`],
      );
    }
    // Two ceremonies opened at 19 passkeys, both completed.
    const auth = new SoftAuthenticator(RP_ID, ORIGIN);
    const o1 = json(await call(h, 'POST', '/api/me/passkeys/registration-options', { cookie })) as { ceremonyToken: string; options: never };
    const o2 = json(await call(h, 'POST', '/api/me/passkeys/registration-options', { cookie })) as { ceremonyToken: string; options: never };
    const r1 = await call(h, 'POST', '/api/me/passkeys', { cookie, payload: { ceremonyToken: o1.ceremonyToken, name: 'A', response: auth.create(o1.options) } });
    expect(r1.statusCode).toBe(201);
    const r2 = await call(h, 'POST', '/api/me/passkeys', { cookie, payload: { ceremonyToken: o2.ceremonyToken, name: 'B', response: auth.create(o2.options) } });
    const [{ n }] = (await h.t.owner.query<{ n: number }>('select count(*)::int as n from passkeys where user_id = $1', [u.id])) as [{ n: number }];
    expect(n, `passkeys stored (cap ${MAX_PASSKEYS}); second registration answered ${r2.statusCode}`).toBeLessThanOrEqual(MAX_PASSKEYS);
  });

  it('[review S2 P2-4, fixed] a refused passkey registration (attestation from another origin) leaves no audit evidence, unlike a refused assertion', async () => {
    const u = await passwordUser(h);
    const cookie = await h.cookieFor(u.email);
    const o = json(await call(h, 'POST', '/api/me/passkeys/registration-options', { cookie })) as { ceremonyToken: string; options: never };
    const phished = new SoftAuthenticator(RP_ID, 'https://palisade.test.evil.example').create(o.options);
    const res = await call(h, 'POST', '/api/me/passkeys', { cookie, payload: { ceremonyToken: o.ceremonyToken, name: 'Phished', response: phished } });
    expect(res.statusCode).toBe(401);
    const evidence = await h.t.owner.query<{ action: string }>(
      `select action from audit_events where target_id = $1 and result <> 'success'`,
      [u.id],
    );
    expect(evidence.map((e) => e.action), 'failure events about this user').toContain('auth.passkey_failed');
  });

  it('[SOUND] a ceremony is bound to its purpose and user: a second-factor ceremony of user A cannot finish B\'s pending sign-in, nor serve as a step-up or a discoverable sign-in', async () => {
    const a = await passwordUser(h);
    const b = await passwordUser(h);
    const authA = new SoftAuthenticator(RP_ID, ORIGIN);
    const authB = new SoftAuthenticator(RP_ID, ORIGIN);
    const ca = await h.cookieFor(a.email);
    const cb = await h.cookieFor(b.email);
    expect((await addPasskey(h, ca, authA)).statusCode).toBe(201);
    expect((await addPasskey(h, cb, authB)).statusCode).toBe(201);
    const tokA = (json(await login(h, a.email, a.password)) as { mfaToken: string }).mfaToken;
    const tokB = (json(await login(h, b.email, b.password)) as { mfaToken: string }).mfaToken;
    const options = async (mfaToken: string) =>
      json(await call(h, 'POST', '/api/auth/passkey/options', { payload: { mfaToken } })) as { ceremonyToken: string; options: { challenge: string } };

    // A's ceremony + A's assertion against B's pending sign-in.
    const oa = await options(tokA);
    const cross = await call(h, 'POST', '/api/auth/mfa/passkey', { payload: { mfaToken: tokB, ceremonyToken: oa.ceremonyToken, response: authA.get(oa.options) } });
    expect(cross.statusCode).toBe(401);
    expect(sessionFrom(cross)).toBeNull();
    // A second-factor ceremony is neither a discoverable sign-in nor a step-up.
    const ob = await options(tokB);
    expect(code(await call(h, 'POST', '/api/auth/passkey/login', { payload: { ceremonyToken: ob.ceremonyToken, response: authB.get(ob.options) } }))).toBe('token_invalid');
    const ob2 = await options(tokB);
    expect(code(await call(h, 'POST', '/api/auth/step-up/passkey', { cookie: cb, payload: { ceremonyToken: ob2.ceremonyToken, response: authB.get(ob2.options) } }))).toBe('token_invalid');
    // B's own step-up ceremony, answered by A's passkey, on B's session: refused.
    const su = json(await call(h, 'POST', '/api/me/passkeys/assertion-options', { cookie: cb })) as { ceremonyToken: string; options: { challenge: string } };
    const foreign = await call(h, 'POST', '/api/auth/step-up/passkey', { cookie: cb, payload: { ceremonyToken: su.ceremonyToken, response: authA.get(su.options, { credential: authA.credentials[0] }) } });
    expect(foreign.statusCode).toBe(401);
    // And B's pending sign-in still completes with B's passkey.
    const ob3 = await options(tokB);
    const ok = await call(h, 'POST', '/api/auth/mfa/passkey', { payload: { mfaToken: tokB, ceremonyToken: ob3.ceremonyToken, response: authB.get(ob3.options) } });
    expect(ok.statusCode, ok.body).toBe(200);
  });
});

// ---------------------------------------------------------------------------------------------
// Piece 1: the signed-in read path (PostgreSQL only: PGlite runs no request transaction)
// ---------------------------------------------------------------------------------------------

describe.runIf(ENGINES.includes('postgres'))('review s2 — request transaction on postgres', () => {
  let t: TestDatabase;
  let single: OpenedDatabase;
  let db: Database;
  let a: string;
  let b: string;

  beforeAll(async () => {
    t = await createTestDatabase('postgres');
    a = (await seedSmallOrg(t.db, 's2-alpha', 1)).orgId;
    b = (await seedSmallOrg(t.db, 's2-bravo', 1)).orgId;
    if (!t.ownerUrl || !t.runtimeUrl) throw new Error('postgres test database without urls');
    // One connection, so that the next request is certain to get the connection the last one released.
    single = await openDatabase(
      { kind: 'postgres', ownerUrl: t.ownerUrl, runtimeUrl: t.runtimeUrl, runtimeRole: TEST_RUNTIME_ROLE, runtimePassword: null, poolSize: 1 },
      { migrate: false },
    );
    db = single.db;
  });
  afterAll(async () => {
    await single?.db.close();
    await single?.owner.close();
    await t?.drop();
  });

  it('[review S2 P1-1, fixed] a call made after its request transaction finished still runs on the released connection: inside the next request\'s transaction, which then reads the other tenant\'s rows', async () => {
    // Request 1 (org A) leaves something behind that outlives it: a timer, an event listener, an
    // un-awaited promise. AsyncLocalStorage carries the finished PinnedConnection into it.
    let late: Promise<unknown> = Promise.resolve();
    await db.requestTransaction(async () => {
      await db.withTenant({ orgId: a, projectIds: null }, (tx) => rows(tx, sql`select 1`));
      await new Promise<void>((scheduled) => {
        setTimeout(() => {
          late = db.withTenant({ orgId: a, projectIds: null }, (tx) => rows(tx, sql`select 1`)).catch((e: unknown) => e);
        }, 30);
        scheduled();
      });
    });
    // Request 2 (org B) gets the same (only) connection and reads its projects a moment later.
    const seen = await db.requestTransaction(() =>
      db.withTenant({ orgId: b, projectIds: null }, async (tx) => {
        await sleep(120);
        return one<{ org: string; orgs: string[] }>(
          tx,
          sql`select current_setting('palisade.org_id', true) as org, coalesce(array_agg(distinct org_id::text), '{}') as orgs from projects`,
        );
      }),
    );
    const lateResult = await late;
    expect(seen, `the late call ${lateResult instanceof Error ? 'threw' : 'ran'}`).toEqual({ org: b, orgs: [b] });
    // The late call ran in a transaction of its own (as it would without a request transaction).
    expect(lateResult).not.toBeInstanceOf(Error);
  });

  it('[review S2 P1-2, fixed] a call that catches its own SQL error leaves the request transaction aborted: every later call of the request fails and the earlier calls\' writes are rolled back at COMMIT (as separate transactions, only the failing call\'s work was lost)', async () => {
    const kept = newId();
    const outcome = await db.requestTransaction(async () => {
      // 1. A write that should stand (a session touch or rotation in real requests).
      await db.withTenant({ orgId: a, projectIds: null }, (tx) =>
        rows(tx, sql`insert into projects (org_id, id, name) values (${a}, ${kept}, 'written before') returning id`),
      );
      // 2. A call that treats a failed statement as "not found" and returns normally.
      const soft = await db.withTenant({ orgId: a, projectIds: null }, async (tx) => {
        try {
          await sql`select 1 / 0`.execute(tx);
          return 'found';
        } catch {
          return 'not found';
        }
      });
      // 3. The next call, for another org.
      const next = await db
        .withTenant({ orgId: b, projectIds: null }, (tx) => rows<{ id: string }>(tx, sql`select id::text from projects`))
        .then((r) => `ok: ${r.length} rows`, (e: Error) => `failed: ${e.message}`);
      return { soft, next };
    });
    const written = await t.owner.query('select 1 from projects where id = $1', [kept]);
    expect({ ...outcome, firstWriteCommitted: written.length === 1 }).toEqual({ soft: 'not found', next: 'ok: 1 rows', firstWriteCommitted: true });
  });
});

describe.runIf(ENGINES.includes('postgres'))('review s2 — lock order of a refused signed-in read (postgres)', () => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp('postgres');
  });
  afterAll(async () => h?.close());

  it('[SOUND] a refused GET keeps its session row (touch) to the end of its transaction, then takes the audit head: the same order as a role change (sessions, then head), so no deadlock', async () => {
    const acme = h.orgId('acme');
    const victim = await newUser(h, acme, 'member');
    const v = await as(h, victim.email);
    const owner = await as(h, h.user('acme', 'owner').email);
    // The victim's session is due for its last_seen touch (the touch interval is 60 s).
    h.clock.advance(61_000);
    const lock = new pg.Client({ connectionString: h.t.ownerUrl! });
    const mon = new pg.Client({ connectionString: h.t.ownerUrl! });
    await lock.connect();
    await mon.connect();
    const waiting = async (n: number) => {
      for (let i = 0; i < 300; i++) {
        const r = await mon.query("select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'");
        if (r.rows[0].n >= n) return;
        await sleep(10);
      }
      throw new Error(`not waiting ${n}`);
    };
    try {
      // Orchestration only: hold the org's audit head so that both requests queue.
      await lock.query('begin');
      await lock.query('select 1 from audit_heads where org_id = $1 for update', [acme]);
      const change = owner.call('PATCH', `/api/orgs/${acme}/members/${victim.id}`, { role: 'viewer' }); // victim's sessions (markRotate) → head
      await waiting(1);
      const refused = v.call('GET', `/api/orgs/${acme}/settings`); // touch (victim's session row) → refused → head
      await waiting(2);
      await lock.query('commit');
      const started = Date.now();
      const [c, r] = await Promise.all([change, refused]);
      const took = Date.now() - started;
      const denied = await h.t.owner.query<{ n: number }>(
        "select count(*)::int as n from audit_events where org_id = $1 and action = 'authz.denied' and actor_id = $2",
        [acme, victim.id],
      );
      expect(c.statusCode, c.body).toBe(204);
      expect(r.statusCode).toBe(403);
      expect({ deniedAudited: denied[0]?.n, stalled: took >= 900 }).toEqual({ deniedAudited: 1, stalled: false });
    } finally {
      await lock.query('rollback').catch(() => undefined);
      await lock.end();
      await mon.end();
    }
  });
});

