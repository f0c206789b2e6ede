/**
 * `palisade serve` with SMTP_URL sends mail by itself: the mail worker starts with the server's
 * background jobs, and a reset asked over HTTP reaches the SMTP server without anyone draining.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { serve } from '../../src/main.js';
import { freePort } from '../support/redis.js';
import { mimeParts, startSmtp, type LoopbackSmtp } from '../support/smtp.js';

describe('a server started with SMTP_URL', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'palisade-serve-mail-'));
  let smtp: LoopbackSmtp;
  let stop: (() => Promise<void>) | null = null;
  let origin = '';

  beforeAll(async () => {
    smtp = await startSmtp();
    const port = await freePort();
    origin = `http://127.0.0.1:${port}`;
    const config = loadConfig({
      PALISADE_ENV: 'development', HOST: '127.0.0.1', PORT: String(port), PUBLIC_ORIGIN: origin, LOG_LEVEL: 'silent',
      PALISADE_STATE_DIR: stateDir, PALISADE_DATA_DIR: 'memory', SMTP_URL: smtp.url, SMTP_TIMEOUT_MS: '1000',
    });
    // serve prints its banner (demo logins): kept off the test output.
    const write = process.stdout.write.bind(process.stdout);
    process.stdout.write = () => true;
    try {
      stop = await serve(config);
    } finally {
      process.stdout.write = write;
    }
  }, 120_000);
  afterAll(async () => {
    await stop?.();
    await smtp?.close();
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('mails a reset link asked over HTTP, with no drain by hand', async () => {
    const res = await fetch(`${origin}/api/auth/password-reset/request`, {
      method: 'POST', headers: { 'content-type': 'application/json', origin }, body: JSON.stringify({ email: 'owner@acme.test' }),
    });
    expect(res.status).toBe(202);
    const until = Date.now() + 10_000;
    while (smtp.received.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(smtp.received.map((m) => m.to)).toEqual([['owner@acme.test']]);
    const { parts } = mimeParts(smtp.received[0]!.raw);
    expect(parts[0]?.text).toMatch(new RegExp(`^Reset your password: ${origin}/reset-password#token=pal_pwr_`));
  }, 30_000);
});
