/**
 * Mail that reaches people (issue 13): the outbox, sent by the mail worker over SMTP to a real
 * server on loopback (smtp-server). A refusing, hung or stopped server leaves the message
 * pending, never lost, and never holds up the request that wrote it.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createMailWorker, createSmtpTransport, type MailWorker } from '../../src/domains/mail/index.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { ENGINES } from '../support/db.js';
import { mimeParts, startSmtp, type LoopbackSmtp } from '../support/smtp.js';

const TIMEOUT_MS = 1000;

interface Row {
  status: string;
  attempts: number;
  last_error: string | null;
  sent_at: Date | null;
}

describe.each(ENGINES)('mail delivery over SMTP on %s', (engine) => {
  let h: TestApp;
  let smtp: LoopbackSmtp;
  let worker: MailWorker;

  beforeAll(async () => {
    smtp = await startSmtp();
    h = await createTestApp(engine, {
      config: { SMTP_URL: smtp.url, SMTP_TIMEOUT_MS: String(TIMEOUT_MS), MAIL_FROM: 'Palisade <security@palisade.test>' },
    });
    const w = h.built.services.mailWorker;
    if (!w) throw new Error('SMTP_URL set, yet no mail worker');
    worker = w;
  });
  afterAll(async () => {
    await h?.close();
    await smtp?.close();
  });
  beforeEach(() => {
    smtp.mode = 'accept';
    smtp.received.length = 0;
  });

  const requestReset = (email: string) =>
    h.built.app.inject({ method: 'POST', url: '/api/auth/password-reset/request', headers: { origin: ORIGIN }, payload: { email } });
  /** The blind index of a recipient (migration 039: the outbox holds no address in clear). */
  const indexOf = (to: string) => h.t.db.withSystem('test: a recipient\'s index', (tx) => h.built.services.sealer.emailIndex(tx, to));
  /**
   * The outbox rows of a recipient: found by index while queued, and by the ids seen then once
   * they reached their end (a sent or failed message forgets its recipient, migration 039).
   */
  const seen = new Map<string, string[]>();
  const rowsFor = async (to: string) => {
    const found = await h.t.owner.query<Row & { id: string }>(
      'select id, status, attempts, last_error, sent_at from mail_outbox where to_index = $1 or id = any ($2::uuid[]) order by created_at',
      [await indexOf(to), seen.get(to) ?? []]);
    seen.set(to, found.map((r) => r.id));
    return found.map(({ id: _id, ...r }) => r);
  };
  /** Past every retry delay of the schedule's early attempts. */
  const later = () => h.clock.advance(10 * 60_000);

  it('sends a reset mail with a text part and an HTML part whose only link is the reset page', async () => {
    expect((await requestReset('owner@acme.test')).statusCode).toBe(202);
    expect(await rowsFor('owner@acme.test')).toMatchObject([{ status: 'pending', attempts: 0 }]);
    expect(await worker.drain()).toBe(1);

    expect(smtp.received).toHaveLength(1);
    const mail = smtp.received[0]!;
    expect(mail.from).toBe('security@palisade.test');
    expect(mail.to).toEqual(['owner@acme.test']);
    const { headers, parts } = mimeParts(mail.raw);
    expect(headers).toMatch(/^Subject: Reset your Palisade password$/m);
    expect(headers).toMatch(/^Content-Type: multipart\/alternative/m);
    expect(headers).toMatch(/^Auto-Submitted: auto-generated$/m);
    expect(parts.map((p) => p.type)).toEqual(['text/plain', 'text/html']);
    const token = /pal_pwr_[A-Za-z0-9_-]{43}/.exec(parts[0]!.text)?.[0];
    expect(token).toBeDefined();
    const link = `${ORIGIN}/reset-password#token=${token}`;
    expect(parts[0]!.text).toContain(`Reset your password: ${link}\n`);
    expect(parts[1]!.text).toContain(`<a href="${link}">${link}</a>`);
    expect(parts[1]!.text.match(/<a /g)).toHaveLength(1);

    const [row] = await rowsFor('owner@acme.test');
    expect(row).toMatchObject({ status: 'sent', attempts: 1, last_error: null });
    expect(row?.sent_at).toBeInstanceOf(Date);
    // Sent once: nothing is due any more.
    later();
    expect(await worker.drain()).toBe(0);
  });

  it('keeps a message the server refuses (550) or defers (451) pending, and delivers it once the server accepts', async () => {
    smtp.mode = 'refuse';
    await requestReset('admin@acme.test');
    expect(await worker.drain()).toBe(1);
    expect(await rowsFor('admin@acme.test')).toMatchObject([{ status: 'pending', attempts: 1, last_error: 'smtp_550' }]);
    // Not due again before its retry time.
    expect(await worker.drain()).toBe(0);

    smtp.mode = 'defer';
    later();
    expect(await worker.drain()).toBe(1);
    expect(await rowsFor('admin@acme.test')).toMatchObject([{ status: 'pending', attempts: 2, last_error: 'smtp_451' }]);
    expect(smtp.received).toHaveLength(0);

    smtp.mode = 'accept';
    later();
    expect(await worker.drain()).toBe(1);
    expect(await rowsFor('admin@acme.test')).toMatchObject([{ status: 'sent', attempts: 3 }]);
    expect(smtp.received.map((m) => m.to)).toEqual([['admin@acme.test']]);
    const logs = h.logs.join('');
    expect(logs).toContain('"msg":"mail not delivered, will retry"');
    expect(logs).toContain('"error":"smtp_550"');
  });

  it('answers the request at once while the server hangs; the message stays pending and goes out when the server recovers', async () => {
    smtp.mode = 'hang';
    const connectionsBefore = smtp.connections;
    worker.start();
    try {
      const started = performance.now();
      expect((await requestReset('member@acme.test')).statusCode).toBe(202);
      // Well under one SMTP timeout: the request only wrote the message.
      expect(performance.now() - started).toBeLessThan(TIMEOUT_MS / 2);
      // The worker picks it up (it polls every second), the greeting never comes, the timeout ends the attempt.
      await waitFor(async () => (await rowsFor('member@acme.test'))[0]?.last_error === 'timeout', 8000);
      expect(smtp.connections).toBeGreaterThan(connectionsBefore);
      expect(await rowsFor('member@acme.test')).toMatchObject([{ status: 'pending', attempts: 1, last_error: 'timeout' }]);
      // Meanwhile the service answers as usual.
      const again = performance.now();
      expect((await requestReset('viewer@acme.test')).statusCode).toBe(202);
      expect(performance.now() - again).toBeLessThan(TIMEOUT_MS / 2);
    } finally {
      await worker.stop();
    }
    smtp.mode = 'accept';
    later();
    await worker.drain();
    expect(smtp.received.flatMap((m) => m.to).sort()).toEqual(['member@acme.test', 'viewer@acme.test']);
    expect(await rowsFor('member@acme.test')).toMatchObject([{ status: 'sent' }]);
  });

  it('keeps the message pending while the server is down, and delivers it when it is back', async () => {
    const port = smtp.port;
    await smtp.close();
    try {
      await requestReset('owner@globex.test');
      expect(await worker.drain()).toBe(1);
      expect(await rowsFor('owner@globex.test')).toMatchObject([{ status: 'pending', attempts: 1, last_error: 'unreachable' }]);
    } finally {
      smtp = await startSmtp({ port });
    }
    later();
    expect(await worker.drain()).toBe(1);
    expect(smtp.received.map((m) => m.to)).toEqual([['owner@globex.test']]);
    expect(await rowsFor('owner@globex.test')).toMatchObject([{ status: 'sent', attempts: 2 }]);
  });

  it('gives up after the last attempt: the message is failed, logged without its body or address', async () => {
    smtp.mode = 'refuse';
    await requestReset('admin@globex.test');
    expect(await rowsFor('admin@globex.test')).toMatchObject([{ status: 'pending', attempts: 0 }]);
    for (let i = 0; i < 10; i++) {
      expect(await worker.drain()).toBe(1);
      h.clock.advance(2 * 3600_000);
    }
    expect(await worker.drain()).toBe(0);
    expect(await rowsFor('admin@globex.test')).toMatchObject([{ status: 'failed', attempts: 10, last_error: 'smtp_550' }]);
    const line = h.logs.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'mail delivery failed for good');
    expect(line).toMatchObject({ attempts: 10, error: 'smtp_550' });
    const logs = h.logs.join('');
    expect(logs).not.toContain('pal_pwr_');
    expect(logs).not.toContain('admin@globex.test');
  });

  it.runIf(engine === 'postgres')('sends each message once when two workers race for the outbox', async () => {
    const services = h.built.services;
    const smtpSettings = { host: '127.0.0.1', port: smtp.port, secure: false, requireTLS: false, user: null, password: null, timeoutMs: TIMEOUT_MS };
    const second = createMailWorker({
      db: h.t.db, clock: h.clock, sealer: services.sealer, transport: createSmtpTransport(smtpSettings, 'security@palisade.test'),
      logger: h.logger, publicOrigin: ORIGIN, timeoutMs: TIMEOUT_MS,
    });
    const recipients = Array.from({ length: 40 }, (_, i) => `race-${i}@example.test`);
    await h.t.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
      for (const to of recipients) await services.mail.enqueue(tx, { to, subject: 'Race', body: 'One of many.' });
    });
    // Slow acceptance makes the two workers' batches overlap in time.
    smtp.dataDelayMs = 20;
    try {
      const [a, b] = await Promise.all([worker.drain(), second.drain()]);
      expect(a + b).toBe(recipients.length);
      expect(a).toBeGreaterThan(0);
      expect(b).toBeGreaterThan(0);
    } finally {
      smtp.dataDelayMs = 0;
    }
    expect(smtp.received.flatMap((m) => m.to).sort()).toEqual([...recipients].sort());
    // Sent, each once, and forgotten: no recipient, index or body left (migration 039).
    const states = await h.t.owner.query<{ status: string; attempts: number; n: number }>(
      `select status, attempts, count(*)::int as n from mail_outbox
       where subject = 'Race' and to_sealed = '' and to_index = '' and body_sealed = '' group by 1, 2`,
    );
    expect(states).toEqual([{ status: 'sent', attempts: 1, n: recipients.length }]);
    const indexes: string[] = [];
    for (const to of recipients) indexes.push(await indexOf(to));
    expect(await h.t.owner.query('select 1 from mail_outbox where to_index = any ($1)', [indexes])).toEqual([]);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('condition not met in time');
}
