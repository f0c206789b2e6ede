/**
 * Replaying a captured inbound delivery, as the third attacker review (S3, machine access,
 * 96efc88) tried it: every replay is refused alike and the event applies once.
 */
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type Problem, type TestApp } from '../support/app.js';
import { client, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';

describe.each(ENGINES)('inbound replays on %s', (engine) => {
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

  // review S3 (SOUND: tried and refused). A captured delivery is not replayed under a new id, at
  // another org's path or after the window; one event applies once.
  it('a captured delivery does not replay under a new id, at another path or late', async () => {
    const secret = `whsec_${Buffer.alloc(32, 0x33).toString('base64')}`;
    const made = await admin.call('POST', `/api/orgs/${acme}/inbound-sources`, { name: `s3 ${uniq()}`, provider: 'standard', secret });
    expect(made.statusCode, made.body).toBe(201);
    const { id: sourceId, receivePath } = made.json<{ id: string; receivePath: string }>();
    const body = JSON.stringify({ type: 'invoice.paid', amount: 1 });
    const signed = (id: string, when: Date, payload = body) => ({
      'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(when.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign(id, when, payload),
    });
    const post = (path: string, headers: Record<string, string>, payload = body) => h.built.app.inject({ method: 'POST', url: path, headers, payload });
    const now = h.clock.now();
    const headers = signed('evt_s3_1', now);
    expect((await post(receivePath, headers)).json()).toEqual({ received: true, duplicate: false });
    expect((await post(receivePath, headers)).json()).toEqual({ received: true, duplicate: true });
    const refusals = [
      await post(receivePath, { ...headers, 'webhook-id': 'evt_s3_2' }), // the old signature under a new id
      await post(`/api/inbound/${globex}/${sourceId}`, headers), // another org's path for the same source id
      await post(receivePath, signed('evt_s3_3', new Date(now.getTime() - 301_000))), // outside the window
      await post(receivePath, { ...headers, 'webhook-signature': `${headers['webhook-signature']} v1,${'A'.repeat(44)}` }, `${body} `), // body changed
    ];
    for (const r of refusals) {
      expect(r.statusCode).toBe(400);
      expect({ ...r.json<Problem>(), requestId: 'x' }).toEqual({ ...refusals[0]?.json<Problem>(), requestId: 'x' });
    }
    const applied = await h.t.owner.query<{ n: number }>('select count(*)::int as n from inbound_events where source_id = $1', [sourceId]);
    expect(applied[0]?.n).toBe(1);
  });
});
