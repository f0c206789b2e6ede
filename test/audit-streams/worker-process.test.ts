/**
 * Audit streams from `palisade worker` (bin/palisade.mjs) in a child process, as a deployment
 * runs it beside the servers: it finds the org by polling (no in-process wake-up), streams the
 * trail to a receiver in this process, and when killed mid-batch (SIGKILL) a worker started
 * afterwards resumes from the cursor: nothing is lost, and the only repeat is the batch that
 * was on the wire. SIGTERM waits for the batch in flight and exits 0.
 * PostgreSQL only: an in-memory PGlite database cannot be shared with another process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemContext } from '../../src/kernel/context.js';
import { createTestApp, ORIGIN, TEST_KEK, type TestApp } from '../support/app.js';
import { BIN } from '../support/bin.js';
import { client } from '../support/client.js';
import { ENGINES, TEST_RUNTIME_ROLE } from '../support/db.js';
import { NdjsonReceiver } from './receivers.js';

const POSTGRES = ENGINES.includes('postgres');

describe.runIf(POSTGRES)('audit streams from palisade worker (PostgreSQL, real processes)', () => {
  let h: TestApp;
  const receiver = new NdjsonReceiver();
  let base = '';
  const children = new Set<ChildProcess>();
  const stateDir = mkdtempSync(join(tmpdir(), 'palisade-stream-worker-'));

  function spawnWorker(): { child: ChildProcess; exited: Promise<number | null>; output: () => string } {
    const env: Record<string, string | undefined> = {
      ...process.env, DATABASE_URL: h.t.ownerUrl ?? '', PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE, PALISADE_ENV: 'test', PUBLIC_ORIGIN: ORIGIN,
      PALISADE_KEKS: `${TEST_KEK.id}:${TEST_KEK.key.toString('base64')}`, PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
      PALISADE_STATE_DIR: stateDir, PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true', LOG_LEVEL: 'warn',
    };
    delete env.DATABASE_RUNTIME_URL;
    delete env.REDIS_URL;
    const child = spawn(process.execPath, [BIN, 'worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => {
      children.delete(child);
      resolve(code);
    }));
    return { child, exited, output: () => out };
  }

  beforeAll(async () => {
    h = await createTestApp('postgres', { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    base = await receiver.start();
  });
  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    await receiver.close();
    await h?.close();
  });

  it('streams the trail, survives a kill mid-batch without losing an event, and stops gracefully', async () => {
    const acme = h.orgId('acme');
    const admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    const created = await admin.call('POST', `/api/orgs/${acme}/audit/streams`, { kind: 'https', url: `${base}/siem` });
    expect(created.statusCode, created.body).toBe(201);
    const from = created.json<{ stream: { cursorSeq: number } }>().stream.cursorSeq;
    await h.t.db.withTenant({ orgId: acme, projectIds: null }, async (tx) => {
      for (let i = 0; i < 1800; i++) await h.built.services.audit.append(tx, acme, systemContext('worker-test'), { action: 'org.updated', details: { n: i } });
    });
    const head = Number((await h.t.owner.query<{ seq: string }>('select seq::text from audit_heads where org_id = $1', [acme]))[0]?.seq);
    // Each batch (500 events) is acknowledged after 400 ms: time to kill the worker with one on the wire.
    receiver.answer = () => ({ status: 200, delayMs: 400 });
    const first = spawnWorker();
    await receiver.waitForEvents(1000, 20_000);
    while (receiver.inFlight === 0) await new Promise((r) => setTimeout(r, 5));
    first.child.kill('SIGKILL');
    await first.exited;
    const acknowledged = receiver.events().length;
    // Its leases would run out after 60 s; the test lets them run out now.
    await h.t.owner.query(`update audit_streams set lease_until = now() - interval '1 second' where lease_until is not null`);
    await h.t.owner.query(`update audit_stream_orgs set check_at = now()`);

    receiver.answer = () => 200;
    const second = spawnWorker();
    const seqs = () => receiver.events().map((e) => e.seq);
    const deadline = Date.now() + 20_000;
    while (new Set(seqs()).size < head - from && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const all = seqs();
    expect([...new Set(all)].sort((a, b) => a - b)).toEqual(Array.from({ length: head - from }, (_, i) => from + 1 + i));
    // The repeats are the batch the killed worker had on the wire (acknowledged by the receiver after the kill), nothing else.
    expect(all.length - (head - from)).toBeLessThanOrEqual(500);
    expect(acknowledged).toBeGreaterThanOrEqual(1000);
    const status = (await admin.call('GET', `/api/orgs/${acme}/audit/streams`)).json<{ streams: { status: string; lagEvents: number }[] }>().streams[0];
    expect(status).toMatchObject({ status: 'ok', lagEvents: 0 });

    second.child.kill('SIGTERM');
    expect(await second.exited).toBe(0);
    expect(second.output()).not.toMatch(/error/i);
  });
});
