/**
 * `palisade worker` runs the background jobs from createServices with no HTTP app (issue 11): the
 * real CLI in a child process that is refused Fastify outright, holds no listening socket, and
 * still delivers a webhook queued by the in-process app. PostgreSQL only (a second process).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { BIN } from '../support/bin.js';
import { client } from '../support/client.js';
import { ENGINES, TEST_RUNTIME_ROLE } from '../support/db.js';
import { Receiver } from './receiver.js';

const REFUSE_FASTIFY = fileURLToPath(new URL('./refuse-fastify.mjs', import.meta.url));

/** Inodes of the TCP sockets `pid` holds in LISTEN state (Linux /proc). */
function listeningSockets(pid: number): string[] {
  const owned = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) owned.add(m[1] as string);
    } catch {
      // An fd closed while we looked.
    }
  }
  const listening: string[] = [];
  for (const table of ['tcp', 'tcp6']) {
    const file = `/proc/${pid}/net/${table}`;
    if (!existsSync(file)) continue;
    for (const line of readFileSync(file, 'utf8').split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // st 0A is LISTEN; column 9 is the socket's inode.
      if (cols[3] === '0A' && owned.has(cols[9] ?? '')) listening.push(cols[9] as string);
    }
  }
  return listening;
}

describe.runIf(ENGINES.includes('postgres'))('palisade worker without the HTTP app', () => {
  let h: TestApp;
  let receiver: Receiver;
  let base: string;
  let child: ChildProcess | null = null;

  beforeAll(async () => {
    receiver = new Receiver();
    base = await receiver.start();
    h = await createTestApp('postgres', { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
  });
  afterAll(async () => {
    child?.kill('SIGKILL');
    await receiver?.close();
    await h?.close();
  });

  it('delivers a queued webhook from a process that loads no Fastify and listens on no port', async () => {
    const acme = h.orgId('acme');
    const admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    const created = await admin.call('POST', `/api/orgs/${acme}/webhooks`, { url: `${base}/hook`, events: ['project.created'] });
    expect(created.statusCode, created.body).toBe(201);
    const { secret } = created.json<{ secret: string }>();
    expect((await admin.call('POST', `/api/orgs/${acme}/projects`, { name: 'delivered-by-the-worker' })).statusCode).toBe(201);

    const env: Record<string, string | undefined> = {
      ...process.env,
      DATABASE_URL: h.t.ownerUrl ?? '',
      PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE,
      PALISADE_ENV: 'test',
      PUBLIC_ORIGIN: ORIGIN,
      // The keys of testConfig: the child opens the endpoint secret the in-process app sealed.
      PALISADE_KEKS: `k1:${Buffer.alloc(32, 7).toString('base64')}`,
      PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
      PALISADE_STATE_DIR: mkdtempSync(join(tmpdir(), 'palisade-worker-alone-')),
      PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true',
      LOG_LEVEL: 'warn',
    };
    delete env.DATABASE_RUNTIME_URL;
    delete env.REDIS_URL;
    const proc = spawn(process.execPath, ['--import', REFUSE_FASTIFY, BIN, 'worker'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    let out = '';
    proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      proc.once('exit', (code, signal) => resolve({ code, signal })));
    const delivered = receiver.waitFor(1, 30_000);
    await Promise.race([delivered, exited.then((e) => Promise.reject(new Error(`worker exited (${e.code ?? e.signal}):\n${out}`)))]);

    const [request] = receiver.received;
    expect(JSON.parse(request?.body ?? '{}')).toMatchObject({ type: 'project.created', data: { orgId: acme } });
    new Webhook(secret).verify(request?.body ?? '', request?.headers as Record<string, string>);
    if (existsSync(`/proc/${proc.pid}/fd`)) expect(listeningSockets(proc.pid as number)).toEqual([]);

    proc.kill('SIGTERM');
    expect(await exited, out).toEqual({ code: 0, signal: null });
    expect(out).toBe('webhook worker running\n');
    child = null;
  });
});
