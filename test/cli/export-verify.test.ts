import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { runBin } from '../support/bin.js';

/**
 * `palisade export verify`: what a recipient runs on a downloaded archive, offline (no database,
 * no configuration): the archive made and downloaded through the API verifies; one changed byte
 * in the manifest, or a key set without the signing key, does not.
 */
describe('palisade export verify', () => {
  let h: TestApp;
  const dir = mkdtempSync(join(tmpdir(), 'palisade-export-cli-'));
  const file = (name: string) => join(dir, name);

  beforeAll(async () => {
    h = await createTestApp('pglite', { config: { PALISADE_EXPORT_DIR: file('archives') } });
    const acme = h.orgId('acme');
    const headers = { cookie: await h.cookieFor(h.user('acme', 'owner').email), origin: ORIGIN };
    const requested = await h.built.app.inject({ method: 'POST', url: `/api/orgs/${acme}/exports`, headers });
    await h.built.services.exportJob.drain();
    const link = await h.built.app.inject({ method: 'POST', url: `/api/orgs/${acme}/exports/${requested.json<{ id: string }>().id}/link`, headers });
    const archive = (await h.built.app.inject({ method: 'GET', url: link.json<{ url: string }>().url })).rawPayload;
    writeFileSync(file('export.tar'), archive);
    const tampered = Buffer.from(archive);
    const at = tampered.indexOf(Buffer.from('"rows": '));
    tampered.write('9', at + 8);
    writeFileSync(file('tampered.tar'), tampered);
    writeFileSync(file('keys.json'), (await h.built.app.inject({ method: 'GET', url: '/.well-known/palisade-export-keys' })).body);
    writeFileSync(file('other-keys.json'), JSON.stringify({ keys: [] }));
  });
  afterAll(async () => h?.close());

  it('verifies a downloaded archive against the published keys, with no database or configuration', async () => {
    const r = await runBin(['export', 'verify', file('export.tar'), '--keys', file('keys.json')], { PALISADE_KEKS: 'garbage' });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^verified: export [0-9a-f-]{36} of org [0-9a-f-]{36}, signed by key [0-9a-f]{32}; \d+ tables, \d+ rows in \d+ files/);
  });

  it('refuses a tampered manifest and a key set without the signing key (exit 1), and a missing argument (exit 2)', async () => {
    const tampered = await runBin(['export', 'verify', file('tampered.tar'), '--keys', file('keys.json')], {});
    expect(tampered.code).toBe(1);
    expect(tampered.err).toContain('the manifest signature does not verify');
    const unknown = await runBin(['export', 'verify', file('export.tar'), '--keys', file('other-keys.json')], {});
    expect(unknown.code).toBe(1);
    expect(unknown.err).toMatch(/^no published key [0-9a-f]{32}/);
    const usage = await runBin(['export', 'verify', file('export.tar')], {});
    expect(usage.code).toBe(2);
    expect(usage.err).toContain('export verify needs ARCHIVE and --keys KEYS.json');
  });
});
