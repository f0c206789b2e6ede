import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { runBin } from '../support/bin.js';
import { ENGINES, TEST_RUNTIME_ROLE } from '../support/db.js';
import { auditSelect } from '../support/evidence.js';

const baseEnv = () => ({
  PALISADE_ENV: 'test',
  PALISADE_KEKS: `k1:${Buffer.alloc(32, 7).toString('base64')}`,
  PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
  PALISADE_STATE_DIR: mkdtempSync(join(tmpdir(), 'palisade-cli-')),
  LOG_LEVEL: 'silent',
});

/**
 * `palisade allowlist clear --org SLUG`: the operator's break-glass when no owner can act through
 * the API (review R4 finding 1), audited as the operator (PostgreSQL: the real CLI in a child process).
 */
describe.runIf(ENGINES.includes('postgres'))('palisade allowlist clear', () => {
  let h: TestApp;
  const env = () => ({ ...baseEnv(), DATABASE_URL: h.t.ownerUrl ?? '', PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE });

  beforeAll(async () => {
    h = await createTestApp('postgres');
  });
  afterAll(async () => h?.close());

  // review R4 finding 1
  // In full: empties the list at once, leaves evidence in the org’s chain (which still verifies),
  // and refuses an unknown org
  it('empties the list at once, leaves evidence in the org\u2019s chain, refuses an unknown org', async () => {
    const acme = h.orgId('acme');
    await h.t.owner.query('update org_settings set admin_ip_allowlist = $2 where org_id = $1', [acme, ['198.51.100.0/24']]);
    const cookie = await h.cookieFor(h.user('acme', 'owner').email);
    const webhooks = () => h.built.app.inject({ method: 'GET', url: `/api/orgs/${acme}/webhooks`, headers: { cookie, origin: ORIGIN }, remoteAddress: '203.0.113.9' });
    expect((await webhooks()).statusCode).toBe(403);

    const r = await runBin(['allowlist', 'clear', '--org', 'acme'], env());
    expect(r.code, r.err).toBe(0);
    expect(r.out).toContain('198.51.100.0/24');
    expect((await webhooks()).statusCode).toBe(200);
    const [ev] = await auditSelect<{ actor_type: string; actor_id: string; details: unknown }>(h, ['actor_type', 'actor_id', 'details'], `where org_id = $1 and action = 'org.settings_updated' order by seq desc limit 1`, [acme]);
    expect(ev).toEqual({
      actor_type: 'system', actor_id: 'cli allowlist clear',
      details: { adminIpAllowlist: [], clearedAdminIpAllowlist: ['198.51.100.0/24'], breakGlass: true },
    });
    const verified = await runBin(['audit', 'verify', '--org', 'acme'], env());
    expect(verified.code, verified.out).toBe(0);

    expect((await runBin(['allowlist', 'clear', '--org', 'no-such-org'], env())).code).toBe(2);
    const usage = await runBin(['allowlist', 'clear'], env());
    expect(usage.code).toBe(2);
    expect(usage.err).toContain('allowlist clear --org SLUG');
  });
});

describe('palisade allowlist clear on the embedded engine', () => {
  // In full: is refused while another process holds the data directory (the running server), like
  // every CLI command
  it('is refused while another process holds the data directory', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'palisade-held-'));
    try {
      writeFileSync(join(dataDir, 'palisade.pid'), String(process.pid)); // this process: alive
      const r = await runBin(['allowlist', 'clear', '--org', 'acme'], { ...baseEnv(), PALISADE_DATA_DIR: dataDir, DATABASE_URL: '' });
      expect(r.code).not.toBe(0);
      expect(r.err).toContain(`in use by process ${process.pid}`);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
