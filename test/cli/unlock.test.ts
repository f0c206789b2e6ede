import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { runBin } from '../support/bin.js';
import { ENGINES, TEST_RUNTIME_ROLE } from '../support/db.js';

/** `palisade unlock EMAIL`: the operator's way out of a lockout, audited (PostgreSQL: the real CLI in a child process). */
describe.runIf(ENGINES.includes('postgres'))('palisade unlock', () => {
  let h: TestApp;
  const env = () => ({
    DATABASE_URL: h.t.ownerUrl ?? '',
    PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE,
    PALISADE_ENV: 'test',
    PALISADE_KEKS: `k1:${Buffer.alloc(32, 7).toString('base64')}`,
    PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
    PALISADE_STATE_DIR: mkdtempSync(join(tmpdir(), 'palisade-cli-')),
    LOG_LEVEL: 'silent',
  });
  const login = (email: string, password: string) =>
    h.built.app.inject({ method: 'POST', url: '/api/auth/login', headers: { origin: ORIGIN }, payload: { email, password } });

  beforeAll(async () => {
    h = await createTestApp('postgres');
  });
  afterAll(async () => h?.close());

  it('lifts a lock at once, leaves evidence, and refuses an unknown account', async () => {
    const u = h.user('acme', 'viewer');
    for (let i = 0; i < 5; i++) expect((await login(u.email, 'not-the-password-at-all')).statusCode).toBe(401);
    expect((await login(u.email, u.password)).statusCode).toBe(401); // locked
    const r = await runBin(['unlock', u.email.toUpperCase()], env());
    expect(r.code, r.err).toBe(0);
    expect((await login(u.email, u.password)).statusCode).toBe(200);
    const ev = await h.t.owner.query<{ actor_type: string }>(
      `select actor_type from audit_events where org_id = $1 and action = 'auth.account_unlocked'`, [SYSTEM_ORG_ID]);
    expect(ev).toEqual([{ actor_type: 'system' }]);
    const unknown = await runBin(['unlock', 'nobody@example.test'], env());
    expect(unknown.code).toBe(2);
    // An account that is not locked is not reported "unlocked", and no evidence of an unlock is written.
    const again = await runBin(['unlock', u.email], env());
    expect(again.code, again.err).toBe(0);
    expect(again.out).toContain('was not locked');
    const after = await h.t.owner.query(`select 1 from audit_events where org_id = $1 and action = 'auth.account_unlocked'`, [SYSTEM_ORG_ID]);
    expect(after).toHaveLength(1);
  }, 300_000);
});
