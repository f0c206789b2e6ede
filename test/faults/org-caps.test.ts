import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CREDENTIALS_PER_ORG } from '../../src/domains/credentials/index.js';
import { MAX_SOURCES_PER_ORG } from '../../src/domains/inbound/index.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { signedIn, type Client } from '../support/client.js';
import { freshOrg } from '../support/users.js';

/**
 * A per-org cap ("at most N") is checked by counting, then inserting: concurrent creations in one
 * org must not all see N - 1 and all insert (lockOrgCap). PostgreSQL, where requests really run
 * at once; PGlite has one connection and serializes them anyway.
 */
describe('per-org caps under concurrent creation on postgres', () => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp('postgres');
  });
  afterAll(async () => h?.close());

  async function race(by: Client, url: string, n: number, body: (i: number) => object): Promise<number[]> {
    const answers = await Promise.all(Array.from({ length: n }, (_, i) => by.call('POST', url, body(i))));
    return answers.map((a) => a.statusCode);
  }

  it('never holds more integration credentials than the cap, however many creations race', async () => {
    const { orgId, owner } = await freshOrg(h);
    const by = await signedIn(h, owner.email);
    const url = `/api/orgs/${orgId}/integrations/credentials`;
    for (let i = 0; i < MAX_CREDENTIALS_PER_ORG - 3; i++) expect((await by.call('POST', url, { name: `pre-${i}`, kind: 'api_token', secret: 'tok-123456' })).statusCode).toBe(201);
    const statuses = await race(by, url, 8, (i) => ({ name: `race-${i}`, kind: 'api_token', secret: 'tok-123456' }));
    expect(statuses.filter((s) => s === 201)).toHaveLength(3);
    expect(statuses.filter((s) => s !== 201).every((s) => s === 409)).toBe(true);
    const [row] = await h.t.owner.query<{ n: number }>('select count(*)::int as n from integration_credentials where org_id = $1 and deleted_at is null', [orgId]);
    expect(row?.n).toBe(MAX_CREDENTIALS_PER_ORG);
  });

  it('never holds more inbound sources than the cap', async () => {
    const { orgId, owner } = await freshOrg(h);
    const by = await signedIn(h, owner.email);
    const url = `/api/orgs/${orgId}/inbound-sources`;
    const secret = `whsec_${Buffer.alloc(32, 0x44).toString('base64')}`;
    for (let i = 0; i < MAX_SOURCES_PER_ORG - 2; i++) expect((await by.call('POST', url, { name: `pre ${i}`, provider: 'standard', secret })).statusCode).toBe(201);
    const statuses = await race(by, url, 6, (i) => ({ name: `race ${i}`, provider: 'standard', secret }));
    expect(statuses.filter((s) => s === 201)).toHaveLength(2);
    const [row] = await h.t.owner.query<{ n: number }>('select count(*)::int as n from inbound_sources where org_id = $1 and deleted_at is null', [orgId]);
    expect(row?.n).toBe(MAX_SOURCES_PER_ORG);
  });
});
