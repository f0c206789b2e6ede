/**
 * Machine credentials (API key tokens, outbound and inbound signing secrets) are shown once, in
 * the answer that creates them, and nowhere else: from the third attacker review (S3, 96efc88).
 * test/secrets/canary.test.ts runs the console credential flows the same way.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../support/app.js';
import { bearer, client, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';

async function createKey(by: Client, orgId: string, body: Record<string, unknown>): Promise<{ token: string }> {
  const res = await by.call('POST', `/api/orgs/${orgId}/api-keys`, body);
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

describe.each(ENGINES)('machine secrets shown once on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let admin: Client;
  let run = 0;
  const uniq = () => `${engine}-${run++}-${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
  });
  afterAll(async () => h?.close());

  // review S3 (SOUND: tried and refused). Tokens and signing secrets appear once, in their create
  // answer: not in logs, the audit trail, webhook payloads or the OpenAPI document.
  it('shows key tokens and signing secrets only in their create answer', async () => {
    const { token } = await createKey(admin, acme, { name: 'secret-scan', kind: 'secret', permissions: ['projects:read'] });
    const ep = await admin.call('POST', `/api/orgs/${acme}/webhooks`, { url: `https://hooks.example.com/${uniq()}`, events: ['*'] });
    const whsec = ep.json<{ secret: string }>().secret;
    const rotated = (await admin.call('POST', `/api/orgs/${acme}/webhooks/${ep.json<{ endpoint: { id: string } }>().endpoint.id}/rotate-secret`)).json<{ secret: string }>().secret;
    const inboundSecret = `whsec_${Buffer.alloc(32, 0x44).toString('base64')}`;
    expect((await admin.call('POST', `/api/orgs/${acme}/inbound-sources`, { name: `scan ${uniq()}`, provider: 'standard', secret: inboundSecret })).statusCode).toBe(201);
    // A refused use of each, too.
    await bearer(h, 'GET', `/v1/orgs/${globex}/projects`, token);
    expect((await admin.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: ['projects:read'], expiresAt: token })).statusCode).toBe(400);
    await admin.call('POST', `/api/orgs/${acme}/projects`, { name: `scan ${uniq()}` });
    const trail = (await h.t.owner.query<{ j: string }>('select to_jsonb(a)::text as j from audit_events a')).map((r) => r.j).join('\n');
    const payloads = (await h.t.owner.query<{ payload: string }>('select payload from webhook_deliveries')).map((r) => r.payload).join('\n');
    const openapi = (await h.built.app.inject({ method: 'GET', url: '/openapi.json' })).body;
    for (const s of [token.slice(7), whsec.slice(6), rotated.slice(6), inboundSecret.slice(6)]) {
      for (const [where, text] of [['logs', h.logs.join('')], ['audit', trail], ['payloads', payloads], ['openapi', openapi]] as const) {
        expect(text.includes(s), `${s.slice(0, 6)}… in ${where}`).toBe(false);
      }
    }
  });
});
