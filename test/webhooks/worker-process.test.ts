/**
 * Issue #5 with real processes: `palisade worker` (bin/palisade.mjs) runs as a child against a
 * fresh PostgreSQL database and delivers to a loopback receiver in this process.
 *  - killed mid-delivery (SIGKILL) and restarted: no event lost; the only repeats are the events
 *    that were on the wire at the kill, under the same webhook-id (a receiver deduplicates them);
 *  - stopped gracefully (SIGTERM): deliveries in flight are awaited and recorded, the process
 *    exits 0, it starts no new delivery after the signal, and a worker started afterwards sends
 *    nothing again.
 * PostgreSQL only: an in-memory PGlite database cannot be shared with another process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { BIN } from '../support/bin.js';
import { client, type Client } from '../support/client.js';
import { ENGINES, TEST_RUNTIME_ROLE } from '../support/db.js';
import { Receiver } from './receiver.js';

const POSTGRES = ENGINES.includes('postgres');
const TITLE = POSTGRES
  ? 'palisade worker in real processes (PostgreSQL)'
  : 'palisade worker in real processes: SKIPPED, PostgreSQL only and TEST_ENGINES lacks postgres';

/** The keys testConfig uses: the child must open the endpoint secrets the in-process app sealed. */
const KEKS = `k1:${Buffer.alloc(32, 7).toString('base64')}`;
const SESSION_SECRET = Buffer.alloc(32, 9).toString('base64');
/** The worker polls every second when idle (WorkerDeps.idleMs default). */
const IDLE_POLL_MS = 1000;

interface WorkerChild {
  child: ChildProcess;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

interface DeliveryRow {
  id: string;
  message_id: string;
  status: string;
  attempts: number;
  lease_until: Date | null;
}
interface AttemptRow {
  message_id: string;
  attempt: number;
  status: number | null;
  error: string | null;
  latency_ms: number;
}
interface ApiDelivery {
  messageId: string;
  status: string;
  attempts: { attempt: number; status: number | null; error: string | null }[];
}

describe.runIf(POSTGRES)(TITLE, () => {
  let h: TestApp;
  let receiver: Receiver;
  let base: string;
  let acme: string;
  let globex: string;
  let admin: Client;
  let globexAdmin: Client;
  const secrets = new Map<string, string>();
  const endpoints = new Map<string, string>();
  const children = new Set<ChildProcess>();
  const stateDir = mkdtempSync(join(tmpdir(), 'palisade-worker-'));

  function spawnWorker(): Promise<WorkerChild> {
    const env: Record<string, string | undefined> = {
      ...process.env,
      DATABASE_URL: h.t.ownerUrl ?? '',
      PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE,
      PALISADE_ENV: 'test',
      PUBLIC_ORIGIN: ORIGIN,
      PALISADE_KEKS: KEKS,
      PALISADE_SESSION_SECRET: SESSION_SECRET,
      PALISADE_STATE_DIR: stateDir,
      PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true',
      LOG_LEVEL: 'warn',
    };
    delete env.DATABASE_RUNTIME_URL;
    delete env.REDIS_URL;
    const child = spawn(process.execPath, [BIN, 'worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
      child.once('exit', (code, signal) => {
        children.delete(child);
        resolve({ code, signal, at: Date.now() });
      }),
    );
    const w: WorkerChild = { child, output: () => out, exited };
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker did not start in time:\n${out}`)), 20_000);
      const onData = () => {
        if (!out.includes('webhook worker running')) return;
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve(w);
      };
      child.stdout?.on('data', onData);
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`worker exited before it was ready (${code ?? signal}):\n${out}`));
      });
    });
  }

  async function newProjects(by: Client, orgId: string, n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      const res = await by.call('POST', `/api/orgs/${orgId}/projects`, { name: `wp-${Math.random().toString(36).slice(2, 10)}` });
      expect(res.statusCode, res.body).toBe(201);
    }
  }
  const deliveries = (orgId = acme) =>
    h.t.owner.query<DeliveryRow>(
      'select id, message_id, status, attempts, lease_until from webhook_deliveries where org_id = $1 order by created_at, message_id', [orgId],
    );
  const attempts = (orgId = acme) =>
    h.t.owner.query<AttemptRow>(
      `select d.message_id, a.attempt, a.status, a.error, a.latency_ms from webhook_attempts a
       join webhook_deliveries d on d.org_id = a.org_id and d.id = a.delivery_id where a.org_id = $1 order by d.message_id, a.attempt`, [orgId],
    );
  const webhookId = (i: number) => String(receiver.received[i]?.headers['webhook-id']);
  const receivedIds = () => receiver.received.map((r) => String(r.headers['webhook-id']));
  /** Every request the receiver saw verifies under its endpoint's secret (the child opened it with the same KEKs). */
  function verifyAll(): void {
    for (const r of receiver.received) {
      const org = (JSON.parse(r.body) as { data: { orgId: string } }).data.orgId;
      new Webhook(secrets.get(org) ?? '').verify(r.body, r.headers as Record<string, string>);
    }
  }
  function countById(ids: string[]): Map<string, number> {
    const m = new Map<string, number>();
    for (const id of ids) m.set(id, (m.get(id) ?? 0) + 1);
    return m;
  }

  beforeAll(async () => {
    receiver = new Receiver();
    base = await receiver.start();
    // The in-process app (same database, same KEKs) creates the endpoints and queues the events.
    h = await createTestApp('postgres', { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    globexAdmin = client(h, await h.cookieFor(h.user('globex', 'admin').email));
    for (const [orgId, by] of [[acme, admin], [globex, globexAdmin]] as const) {
      const res = await by.call('POST', `/api/orgs/${orgId}/webhooks`, { url: `${base}/hook`, events: ['project.created'] });
      expect(res.statusCode, res.body).toBe(201);
      const { endpoint, secret } = res.json<{ endpoint: { id: string }; secret: string }>();
      secrets.set(orgId, secret);
      endpoints.set(orgId, endpoint.id);
    }
  });
  afterAll(async () => {
    for (const child of children) {
      child.kill('SIGKILL');
    }
    await receiver?.close();
    await h?.close();
  });
  beforeEach(async () => {
    await h.t.owner.query('delete from webhook_deliveries');
    await h.t.owner.query('delete from webhook_due');
    receiver.received.length = 0;
    receiver.answer = () => 200;
  });

  it('exits 0 at once on SIGTERM when idle', async () => {
    // Signalled the moment it says "running": the handlers must already be in place (they once
    // came after that line, and a signal in between killed the process outright).
    const w = await spawnWorker();
    const t0 = Date.now();
    w.child.kill('SIGTERM');
    const { code, signal, at } = await w.exited;
    expect({ code, signal }, w.output()).toEqual({ code: 0, signal: null });
    expect(at - t0).toBeLessThan(IDLE_POLL_MS + 2000);
    expect(w.output()).toBe('webhook worker running\n');
  });

  // In full: SIGKILL mid-delivery, then a restart: nothing lost, only the events on the wire at the
  // kill are sent again, same webhook-id
  it('SIGKILL mid-delivery, then a restart: nothing lost, only the events on the wire resent', async () => {
    // The first two requests are held unanswered (on the wire when the worker dies); the rest succeed.
    receiver.answer = (_r, n) => (n <= 2 ? 'hang' : 200);
    await newProjects(admin, acme, 5);
    const queued = (await deliveries()).map((d) => d.message_id);
    expect(queued).toHaveLength(5);

    const first = await spawnWorker();
    await receiver.waitFor(5);
    const held = [webhookId(0), webhookId(1)];
    await waitUntil(async () => (await deliveries()).filter((d) => d.status === 'succeeded').length === 3);
    first.child.kill('SIGKILL');
    expect((await first.exited).signal).toBe('SIGKILL');
    // The restart: a new worker process, answered 200 from now on. It boots while we look at
    // what the dead one left (it cannot change that: the leases are still running).
    receiver.answer = () => 200;
    const restarted = spawnWorker();

    // What the dead worker left: the held two claimed (attempt 1 counted, leased), nothing recorded for them.
    const left = await deliveries();
    for (const d of left) {
      if (held.includes(d.message_id)) {
        expect(d).toMatchObject({ status: 'pending', attempts: 1 });
        expect(d.lease_until?.getTime()).toBeGreaterThan(Date.now());
      } else {
        expect(d).toMatchObject({ status: 'succeeded', attempts: 1, lease_until: null });
      }
    }
    expect((await attempts()).map((a) => a.message_id).sort()).toEqual(queued.filter((id) => !held.includes(id)).sort());

    // The new worker honours the dead one's leases: within them it sends nothing.
    const second = await restarted;
    await sleep(IDLE_POLL_MS * 1.5);
    expect(receiver.received).toHaveLength(5);

    // Time passing beyond LEASE_SECONDS (60 s), simulated in SQL rather than waited for: the leases
    // and the org's turn both run out now. No product change (no configurable lease) is needed.
    await h.t.owner.query(`update webhook_deliveries set lease_until = now() - interval '1 second' where lease_until is not null`);
    await h.t.owner.query('update webhook_due set due_at = now()');
    await waitUntil(async () => (await deliveries()).every((d) => d.status === 'succeeded'), 10_000);
    await sleep(IDLE_POLL_MS * 1.2);
    second.child.kill('SIGTERM');
    expect(await second.exited, second.output()).toMatchObject({ code: 0, signal: null });

    // None lost: the webhook-ids received are exactly the ones queued.
    expect(new Set(receivedIds())).toEqual(new Set(queued));
    // The only repeats are the two held at the kill, each exactly twice, with the same bytes.
    const counts = countById(receivedIds());
    for (const id of queued) expect(counts.get(id), id).toBe(held.includes(id) ? 2 : 1);
    expect(receiver.received).toHaveLength(7);
    for (const id of held) {
      const bodies = receiver.received.filter((r) => r.headers['webhook-id'] === id).map((r) => r.body);
      expect(bodies[0]).toBe(bodies[1]);
    }
    verifyAll();
    // The attempt log: the held ones were re-claimed as attempt 2 (attempt 1 died with the worker).
    const log = await attempts();
    for (const id of queued) {
      expect(log.filter((a) => a.message_id === id).map((a) => [a.attempt, a.status, a.error]), id).toEqual([[held.includes(id) ? 2 : 1, 200, null]]);
    }
    const api = (await admin.call('GET', `/api/orgs/${acme}/webhooks/${endpoints.get(acme)}/deliveries?limit=100`)).json<{ deliveries: ApiDelivery[] }>();
    expect(api.deliveries.filter((d) => held.includes(d.messageId)).map((d) => d.attempts.map((a) => a.attempt))).toEqual([[2], [2]]);
    expect(api.deliveries.every((d) => d.status === 'succeeded')).toBe(true);
    expect((await deliveries()).map((d) => d.attempts).sort()).toEqual([1, 1, 1, 2, 2]);
  });

  // In full: SIGTERM mid-delivery: the answers in flight are awaited and recorded, exit 0; a
  // restarted worker sends nothing again
  it('SIGTERM mid-delivery: answers in flight are recorded, exit 0, nothing sent again', async () => {
    // Each answer comes 1 s after its request: long enough that the signal surely lands while
    // all of them are on the wire, even on a loaded machine.
    const delayMs = 1000;
    let lastArrival = 0;
    receiver.answer = () => {
      lastArrival = Date.now();
      return { status: 200, delayMs };
    };
    await newProjects(admin, acme, 3);
    const queued = (await deliveries()).map((d) => d.message_id);

    const w = await spawnWorker();
    await receiver.waitFor(3);
    const signalledAt = Date.now();
    w.child.kill('SIGTERM');
    const { code, signal, at } = await w.exited;
    expect({ code, signal }, w.output()).toEqual({ code: 0, signal: null });
    // The signal came while the answers were pending, and the process outlived them.
    expect(signalledAt).toBeLessThan(lastArrival + delayMs);
    expect(at - lastArrival).toBeGreaterThanOrEqual(delayMs);
    // Every answer was recorded before the exit: succeeded at attempt 1, lease released, org off the list.
    expect((await deliveries()).map((d) => [d.status, d.attempts, d.lease_until])).toEqual(queued.map(() => ['succeeded', 1, null]));
    const log = await attempts();
    expect(log.map((a) => [a.attempt, a.status, a.error])).toEqual(queued.map(() => [1, 200, null]));
    expect(log.every((a) => a.latency_ms >= delayMs - 50)).toBe(true);
    expect(await h.t.owner.query('select org_id from webhook_due')).toEqual([]);
    expect(w.output()).toBe('webhook worker running\n');

    // A worker started afterwards finds nothing to do and sends nothing (two idle polls and more).
    const again = await spawnWorker();
    await sleep(IDLE_POLL_MS * 2.5);
    again.child.kill('SIGTERM');
    expect(await again.exited, again.output()).toMatchObject({ code: 0, signal: null });
    expect(receiver.received).toHaveLength(3);
    expect(receivedIds().sort()).toEqual([...queued].sort());
    expect((await attempts()).map((a) => a.attempt)).toEqual([1, 1, 1]);
    verifyAll();
  });

  it('SIGTERM starts no new delivery: what was not yet on the wire is left to the next worker, none sent twice', async () => {
    // More deliveries than the worker's concurrency (16) in one org, and another org due too:
    // at the signal 16 are on the wire; the other 4 and globex's must wait for the next worker.
    const delayMs = 1500;
    let firstArrival = 0;
    receiver.answer = () => {
      firstArrival ||= Date.now();
      return { status: 200, delayMs };
    };
    await newProjects(admin, acme, 20);
    // Orgs are served longest-waiting first: globex's events come later, so acme's batch fills the lanes.
    h.clock.advance(1000);
    await newProjects(globexAdmin, globex, 2);
    const queued = [...(await deliveries(acme)), ...(await deliveries(globex))].map((d) => d.message_id);
    expect(queued).toHaveLength(22);

    const w = await spawnWorker();
    await receiver.waitFor(16);
    const atSignal = receiver.received.length;
    const signalledAt = Date.now();
    w.child.kill('SIGTERM');
    const { code, signal } = await w.exited;
    expect({ code, signal }, w.output()).toEqual({ code: 0, signal: null });
    // No answer had come back before the signal, so no lane was free to send a 17th.
    expect(signalledAt).toBeLessThan(firstArrival + delayMs);
    expect(atSignal).toBe(16);
    expect(receiver.received, 'requests sent after SIGTERM').toHaveLength(atSignal);
    const all = [...(await deliveries(acme)), ...(await deliveries(globex))];
    expect(all.filter((d) => d.status === 'succeeded')).toHaveLength(16);
    // The rest are released, not left leased to a process that is gone: no attempt was counted for them.
    expect(all.filter((d) => d.status === 'pending').map((d) => [d.attempts, d.lease_until])).toEqual(Array.from({ length: 6 }, () => [0, null]));
    // Both orgs stay due now, so the next worker takes them at once (not after a lease).
    const due = await h.t.owner.query<{ org_id: string; due_at: Date }>('select org_id, due_at from webhook_due order by org_id');
    expect(due.map((d) => d.org_id).sort()).toEqual([acme, globex].sort());
    expect(due.every((d) => d.due_at.getTime() <= Date.now())).toBe(true);

    receiver.answer = () => 200;
    const next = await spawnWorker();
    await receiver.waitFor(22);
    await waitUntil(async () => [...(await deliveries(acme)), ...(await deliveries(globex))].every((d) => d.status === 'succeeded'));
    next.child.kill('SIGTERM');
    expect(await next.exited, next.output()).toMatchObject({ code: 0, signal: null });
    expect(receiver.received).toHaveLength(22);
    expect(new Set(receivedIds())).toEqual(new Set(queued));
    verifyAll();
    const log = [...(await attempts(acme)), ...(await attempts(globex))];
    expect(log.map((a) => [a.attempt, a.status])).toEqual(queued.map(() => [1, 200]));
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error('condition not met in time');
    await sleep(25);
  }
}
