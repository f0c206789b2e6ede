/**
 * Inbound webhooks over HTTP: sources are managed by members holding webhooks:manage; providers
 * post signed events to /api/inbound/:org/:sourceId. Signed with the real schemes (the
 * standardwebhooks package's `sign`, Stripe's HMAC), refused alike when anything is off, applied
 * once per event id however often and however concurrently it arrives, and the secrets never
 * leave the database in clear.
 */
import { createHmac } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../../src/crypto/index.js';
import { RAW_BODY_LIMIT } from '../../src/http/pipeline.js';
import { systemContext } from '../../src/kernel/context.js';
import { AppError } from '../../src/kernel/errors.js';
import { createInboundService, type AppliedEvent, type SourceView } from '../../src/domains/inbound/index.js';
import { createTestApp, type TestApp } from '../support/app.js';
import { client, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { auditSelect, auditRows } from '../support/evidence.js';

// Canary secrets: searched for in every answer, log line and audit event.
const SW_KEY = Buffer.from('CANARY-inbound-standard-7c1d9e2f-31ab');
const SW_SECRET = `whsec_${SW_KEY.toString('base64')}`;
const ST_SECRET = 'whsec_CANARYinboundStripe5e8a0b44c9d3f1e27';
const OTHER_SW_SECRET = `whsec_${Buffer.alloc(32, 0x42).toString('base64')}`;
const SECRETS = [SW_SECRET, SW_KEY.toString('base64'), ST_SECRET, ST_SECRET.slice('whsec_'.length)];

type Headers = Record<string, string | string[]>;

describe.each(ENGINES)('inbound webhooks on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let admin: Client;
  let standard: SourceView;
  let stripeSource: SourceView;
  let globexSource: SourceView;
  const answers: string[] = [];

  const nowS = () => Math.floor(h.clock.now().getTime() / 1000);
  const event = (type = 'invoice.paid', id = `evt_${newId().slice(0, 12)}`) => JSON.stringify({ id, type, data: { amount: 4200 } });

  function swHeaders(body: string, opts: { id?: string; at?: number; secret?: string } = {}): Headers {
    const id = opts.id ?? `msg_${newId().slice(0, 12)}`;
    const at = opts.at ?? nowS();
    const signature = new Webhook(opts.secret ?? SW_SECRET).sign(id, new Date(at * 1000), body);
    return { 'webhook-id': id, 'webhook-timestamp': String(at), 'webhook-signature': signature };
  }

  function stHeaders(body: string, opts: { at?: number; secret?: string } = {}): Headers {
    const at = opts.at ?? nowS();
    const sig = createHmac('sha256', opts.secret ?? ST_SECRET).update(`${at}.${body}`).digest('hex');
    return { 'stripe-signature': `t=${at},v1=${sig}` };
  }

  async function deliver(path: string, body: string, headers: Headers, contentType = 'application/json'): Promise<LightMyRequestResponse> {
    // A provider sends neither a cookie nor an Origin.
    const res = await h.built.app.inject({ method: 'POST', url: path, headers: { 'content-type': contentType, ...headers }, payload: body });
    answers.push(res.body);
    return res;
  }

  async function createSource(by: Client, orgId: string, provider: string, secret: string, name = `src-${newId().slice(0, 6)}`): Promise<SourceView> {
    const res = await by.call('POST', `/api/orgs/${orgId}/inbound-sources`, { name, provider, secret });
    answers.push(res.body);
    expect(res.statusCode, res.body).toBe(201);
    return res.json<SourceView>();
  }

  const applied = async (orgId: string, eventId: string): Promise<number> =>
    (await auditRows(h, `where org_id = $1 and action = 'inbound.received'`, [orgId])).filter((e) => e.details.eventId === eventId).length;
  const recorded = async (): Promise<number> => Number((await h.t.owner.query<{ n: string }>('select count(*) as n from inbound_events'))[0]?.n);
  const auditTotal = async (): Promise<number> => Number((await h.t.owner.query<{ n: string }>('select count(*) as n from audit_events'))[0]?.n);

  /** A refused delivery: the one answer, whatever was wrong. */
  function expectRefused(res: LightMyRequestResponse, what: string): void {
    expect(res.statusCode, `${what}: ${res.body}`).toBe(400);
    expect(res.headers['content-type'], what).toMatch(/^application\/problem\+json/);
    const { requestId, ...rest } = res.json<Record<string, unknown>>();
    expect(typeof requestId, what).toBe('string');
    expect(rest, what).toEqual({
      type: 'https://palisade.dev/problems/token_invalid', title: 'The token is invalid or expired', status: 400, code: 'token_invalid',
      detail: 'the delivery is not signed by this source, or its timestamp is outside the tolerance',
    });
  }

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    standard = await createSource(admin, acme, 'standard', SW_SECRET, 'Billing (Standard Webhooks)');
    stripeSource = await createSource(admin, acme, 'stripe', ST_SECRET, 'Stripe');
    globexSource = await createSource(client(h, await h.cookieFor(h.user('globex', 'owner').email)), globex, 'standard', SW_SECRET);
  });
  afterAll(async () => h?.close());

  describe('managing sources', () => {
    it('creates, lists (never the secret) and audits sources; the secret is sealed at rest', async () => {
      expect(standard).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/), name: 'Billing (Standard Webhooks)', provider: 'standard',
        createdBy: expect.stringMatching(/^[0-9a-f-]{36}$/), createdAt: h.clock.now().toISOString(), receivePath: `/api/inbound/${acme}/${standard.id}`,
      });
      const list = await admin.call('GET', `/api/orgs/${acme}/inbound-sources`);
      answers.push(list.body);
      expect(list.statusCode).toBe(200);
      expect(list.json<{ sources: SourceView[] }>().sources.map((s) => s.id).sort()).toEqual([standard.id, stripeSource.id].sort());
      const rows = await h.t.owner.query<{ secret_sealed: string }>('select secret_sealed from inbound_sources where org_id = $1', [acme]);
      expect(rows).toHaveLength(2);
      for (const r of rows) for (const s of SECRETS) expect(r.secret_sealed.includes(s)).toBe(false);
      const actions = await auditSelect<{ action: string; details: unknown }>(h, ['action', 'details'], `where org_id = $1 and target_id = $2`, [acme, standard.id]);
      expect(actions).toEqual([{ action: 'inbound.source_created', details: { provider: 'standard', name: 'Billing (Standard Webhooks)' } }]);
    });

    it('refuses secrets of the wrong shape and unknown providers without echoing the secret', async () => {
      const bad: [string, string][] = [
        ['standard', `whsec_${Buffer.alloc(16, 1).toString('base64')}`],
        ['standard', Buffer.alloc(32, 1).toString('base64')],
        ['standard', 'whsec_CANARY-not-base64!!'],
        ['stripe', 'whsec_CANARYshort'],
        ['stripe', 'sk_live_CANARY0123456789abcdefghijklmnop'],
        ['github', SW_SECRET],
      ];
      for (const [provider, secret] of bad) {
        const res = await admin.call('POST', `/api/orgs/${acme}/inbound-sources`, { name: 'bad', provider, secret });
        expect(res.statusCode, `${provider} ${secret}`).toBe(400);
        expect(res.json()).toMatchObject({ code: 'validation_failed' });
        expect(res.body.includes(secret)).toBe(false);
      }
      expect((await h.t.owner.query('select 1 from inbound_sources where name = $1', ['bad']))).toEqual([]);
    });

    it('needs webhooks:manage: a member may neither list nor add sources', async () => {
      const member = client(h, await h.cookieFor(h.user('acme', 'member').email));
      expect((await member.call('GET', `/api/orgs/${acme}/inbound-sources`)).statusCode).toBe(403);
      expect((await member.call('POST', `/api/orgs/${acme}/inbound-sources`, { name: 'x', provider: 'stripe', secret: ST_SECRET })).statusCode).toBe(403);
    });
  });

  describe('receiving', () => {
    it('applies a valid Standard Webhooks event once and records it in the audit trail', async () => {
      const body = event('invoice.paid');
      const headers = swHeaders(body, { id: 'msg_first_standard' });
      const res = await deliver(standard.receivePath, body, headers);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({ received: true, duplicate: false });
      const rows = (await auditRows(h, `where org_id = $1 and action = 'inbound.received'`, [acme]))
        .filter((e) => e.details.eventId === 'msg_first_standard')
        .map((e) => ({ actor_type: e.actor_type, actor_id: e.actor_id, target_type: e.target_type, target_id: e.target_id, details: e.details }));
      expect(rows).toEqual([{
        actor_type: 'inbound_source', actor_id: standard.id, target_type: 'inbound_source', target_id: standard.id,
        details: { provider: 'standard', eventId: 'msg_first_standard', type: 'invoice.paid' },
      }]);
    });

    it('applies a valid Stripe-signed event, its id taken from the body', async () => {
      const body = event('charge.succeeded', 'evt_stripe_first');
      const res = await deliver(stripeSource.receivePath, body, stHeaders(body));
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toEqual({ received: true, duplicate: false });
      expect(await applied(acme, 'evt_stripe_first')).toBe(1);
    });

    it('verifies the exact bytes whatever the content type says', async () => {
      const body = `{"id":"evt_spacing",   "type":"x.y" ,"data":{}}`;
      for (const type of ['application/json; charset=utf-8', 'text/plain', 'application/octet-stream']) {
        const res = await deliver(standard.receivePath, body, swHeaders(body), type);
        expect(res.statusCode, `${type}: ${res.body}`).toBe(200);
      }
    });

    it('answers a replay of the same event id with 200 duplicate and applies it once', async () => {
      const body = event('invoice.created');
      const first = swHeaders(body, { id: 'msg_replayed' });
      expect((await deliver(standard.receivePath, body, first)).json()).toEqual({ received: true, duplicate: false });
      const before = await auditTotal();
      // The identical request again (a replay), and the provider's retry a minute later (new timestamp, same id).
      const again = await deliver(standard.receivePath, body, first);
      h.clock.advance(60_000);
      const retry = await deliver(standard.receivePath, body, swHeaders(body, { id: 'msg_replayed' }));
      for (const res of [again, retry]) {
        expect(res.statusCode, res.body).toBe(200);
        expect(res.json()).toEqual({ received: true, duplicate: true });
      }
      expect(await applied(acme, 'msg_replayed')).toBe(1);
      expect(await auditTotal()).toBe(before);
      // A Stripe event is keyed by the id in its body.
      const st = event('charge.refunded', 'evt_replayed');
      expect((await deliver(stripeSource.receivePath, st, stHeaders(st))).json()).toEqual({ received: true, duplicate: false });
      expect((await deliver(stripeSource.receivePath, st, stHeaders(st))).json()).toEqual({ received: true, duplicate: true });
      expect(await applied(acme, 'evt_replayed')).toBe(1);
    });

    it('applies an event delivered 10 times concurrently exactly once', async () => {
      const body = event('customer.updated');
      const headers = swHeaders(body, { id: 'msg_concurrent' });
      const results = await Promise.all(Array.from({ length: 10 }, () => deliver(standard.receivePath, body, headers)));
      expect(results.map((r) => r.statusCode)).toEqual(Array(10).fill(200));
      expect(results.filter((r) => r.json<{ duplicate: boolean }>().duplicate === false)).toHaveLength(1);
      expect(await applied(acme, 'msg_concurrent')).toBe(1);
      const st = event('charge.captured', 'evt_concurrent');
      const stResults = await Promise.all(Array.from({ length: 10 }, () => deliver(stripeSource.receivePath, st, stHeaders(st))));
      expect(stResults.map((r) => r.statusCode)).toEqual(Array(10).fill(200));
      expect(await applied(acme, 'evt_concurrent')).toBe(1);
    });

    it('the same event id at two sources is two events', async () => {
      const other = await createSource(admin, acme, 'standard', OTHER_SW_SECRET);
      const body = event();
      expect((await deliver(standard.receivePath, body, swHeaders(body, { id: 'msg_shared' }))).json()).toMatchObject({ duplicate: false });
      expect((await deliver(other.receivePath, body, swHeaders(body, { id: 'msg_shared', secret: OTHER_SW_SECRET }))).json()).toMatchObject({ duplicate: false });
      expect(await applied(acme, 'msg_shared')).toBe(2);
    });
  });

  describe('refusing', () => {
    it('answers tampered, forged, stale and misaddressed deliveries alike, writing nothing', async () => {
      const body = event('invoice.paid');
      const good = swHeaders(body);
      const sig = good['webhook-signature'] as string;
      const flipped = `${sig.slice(0, 5)}${sig[5] === 'A' ? 'B' : 'A'}${sig.slice(6)}`;
      const without = (name: string): Headers => Object.fromEntries(Object.entries(good).filter(([k]) => k !== name));
      const stBody = event('charge.succeeded');
      const cases: [string, string, string, Headers][] = [
        ['tampered body', standard.receivePath, body.replace('4200', '4201'), good],
        ['tampered signature', standard.receivePath, body, { ...good, 'webhook-signature': flipped }],
        ['wrong secret', standard.receivePath, body, swHeaders(body, { secret: OTHER_SW_SECRET })],
        ['no webhook-id', standard.receivePath, body, without('webhook-id')],
        ['no webhook-timestamp', standard.receivePath, body, without('webhook-timestamp')],
        ['no webhook-signature', standard.receivePath, body, without('webhook-signature')],
        ['no signature headers at all', standard.receivePath, body, {}],
        ['malformed timestamp', standard.receivePath, body, { ...good, 'webhook-timestamp': 'yesterday' }],
        ['malformed signature', standard.receivePath, body, { ...good, 'webhook-signature': 'v1' }],
        // Node joins a repeated header into one value ("a, b"): an id or timestamp no longer parses.
        ['repeated webhook-id', standard.receivePath, body, { ...good, 'webhook-id': [good['webhook-id'] as string, 'msg_other'] }],
        ['repeated webhook-timestamp', standard.receivePath, body, { ...good, 'webhook-timestamp': [good['webhook-timestamp'] as string, '1'] }],
        ['6 minutes old', standard.receivePath, body, swHeaders(body, { at: nowS() - 360 })],
        ['6 minutes in the future', standard.receivePath, body, swHeaders(body, { at: nowS() + 360 })],
        ['a Stripe signature at a Standard source', standard.receivePath, stBody, stHeaders(stBody)],
        ['a Standard signature at a Stripe source', stripeSource.receivePath, body, swHeaders(body, { secret: SW_SECRET })],
        ['stripe: tampered body', stripeSource.receivePath, stBody.replace('4200', '4201'), stHeaders(stBody)],
        ['stripe: wrong secret', stripeSource.receivePath, stBody, stHeaders(stBody, { secret: 'whsec_0123456789abcdef0123456789abcdef' })],
        ['stripe: 6 minutes old', stripeSource.receivePath, stBody, stHeaders(stBody, { at: nowS() - 360 })],
        ['stripe: 6 minutes in the future', stripeSource.receivePath, stBody, stHeaders(stBody, { at: nowS() + 360 })],
        ['stripe: malformed header', stripeSource.receivePath, stBody, { 'stripe-signature': 'v1=abc' }],
        ['an unknown source', `/api/inbound/${acme}/${newId()}`, body, good],
        ['an unknown org', `/api/inbound/${newId()}/${standard.id}`, body, good],
        ['globex\u2019s source under acme (same secret)', `/api/inbound/${acme}/${globexSource.id}`, body, good],
        ['acme\u2019s source under globex', `/api/inbound/${globex}/${standard.id}`, body, good],
        ['a malformed source id', `/api/inbound/${acme}/not-a-uuid`, body, good],
        ['a malformed org id', `/api/inbound/acme/${standard.id}`, body, good],
      ];
      const events = await recorded();
      const audit = await auditTotal();
      for (const [what, path, payload, headers] of cases) expectRefused(await deliver(path, payload, headers), what);
      expect(await recorded()).toBe(events);
      expect(await auditTotal()).toBe(audit);
      // The control: the untampered delivery is accepted.
      expect((await deliver(standard.receivePath, body, good)).statusCode).toBe(200);
    });

    it('goes stale by the server\u2019s clock: a delivery signed now is refused 6 minutes later', async () => {
      const body = event();
      const headers = swHeaders(body);
      h.clock.advance(6 * 60_000);
      expectRefused(await deliver(standard.receivePath, body, headers), 'delayed 6 minutes');
      h.clock.advance(-6 * 60_000);
      expect((await deliver(standard.receivePath, body, headers)).statusCode).toBe(200);
    });

    it('refuses an oversized body with 413 before verifying anything', async () => {
      const body = JSON.stringify({ type: 'big', data: 'x'.repeat(RAW_BODY_LIMIT) });
      const res = await deliver(standard.receivePath, body, swHeaders(body));
      expect(res.statusCode).toBe(413);
      expect(res.json()).toMatchObject({ code: 'payload_too_large' });
      // Up to the limit is fine.
      const fits = JSON.stringify({ type: 'big', data: 'x'.repeat(RAW_BODY_LIMIT - 100) });
      expect((await deliver(standard.receivePath, fits, swHeaders(fits))).statusCode).toBe(200);
    });

    it('answers a correctly signed body that is no event with 400 malformed_request, writing nothing', async () => {
      const events = await recorded();
      for (const body of ['not json at all', '[1,2,3]', '{"no":"type"}', '']) {
        const res = await deliver(standard.receivePath, body, swHeaders(body));
        expect(res.statusCode, `${JSON.stringify(body)}: ${res.body}`).toBe(400);
        expect(res.json()).toMatchObject({ code: 'malformed_request' });
      }
      const noId = JSON.stringify({ type: 'charge.succeeded' });
      expect((await deliver(stripeSource.receivePath, noId, stHeaders(noId))).json()).toMatchObject({ code: 'malformed_request' });
      expect(await recorded()).toBe(events);
    });

    it('a deleted source refuses deliveries and keeps no secret', async () => {
      const doomed = await createSource(admin, acme, 'stripe', ST_SECRET);
      const body = event();
      expect((await deliver(doomed.receivePath, body, stHeaders(body))).statusCode).toBe(200);
      expect((await admin.call('DELETE', `/api/orgs/${acme}/inbound-sources/${doomed.id}`)).statusCode).toBe(204);
      expectRefused(await deliver(doomed.receivePath, event(), stHeaders(event())), 'deleted source');
      expect(await h.t.owner.query('select secret_sealed from inbound_sources where id = $1', [doomed.id])).toEqual([{ secret_sealed: '' }]);
      expect((await admin.call('DELETE', `/api/orgs/${acme}/inbound-sources/${doomed.id}`)).statusCode).toBe(404);
      expect((await admin.call('DELETE', `/api/orgs/${acme}/inbound-sources/${globexSource.id}`)).statusCode).toBe(404);
      const list = (await admin.call('GET', `/api/orgs/${acme}/inbound-sources`)).json<{ sources: SourceView[] }>().sources;
      expect(list.map((s) => s.id)).not.toContain(doomed.id);
      const actions = await h.t.owner.query<{ action: string }>('select action from audit_events where target_id = $1 order by seq', [doomed.id]);
      expect(actions.map((a) => a.action)).toEqual(['inbound.source_created', 'inbound.received', 'inbound.source_deleted']);
    });
  });

  describe('the event handler extension point', () => {
    // In full: runs once per event in the same transaction: a failing handler leaves nothing, and
    // the retry applies the event
    it('runs once per event in the same transaction as the event', async () => {
      const seen: AppliedEvent[] = [];
      let failNext = true;
      const service = createInboundService({
        db: h.t.db, audit: h.built.services.audit, clock: h.clock, sealer: h.built.services.sealer,
        onEvent: async (_tx, orgId, e) => {
          expect(orgId).toBe(acme);
          if (failNext) {
            failNext = false;
            throw new AppError('unavailable', 'downstream busy');
          }
          seen.push(e);
        },
      });
      const body = event('invoice.voided', 'evt_handler');
      const ctx = () => systemContext('inbound-test');
      const deliverDirect = () => service.receive(ctx(), acme, stripeSource.id, { headers: stHeaders(body), body });
      await expect(deliverDirect()).rejects.toMatchObject({ code: 'unavailable' });
      expect(await applied(acme, 'evt_handler')).toBe(0);
      expect(await h.t.owner.query('select 1 from inbound_events where event_id = $1', ['evt_handler'])).toEqual([]);
      expect(await deliverDirect()).toEqual({ received: true, duplicate: false });
      expect(await deliverDirect()).toEqual({ received: true, duplicate: true });
      expect(seen).toEqual([{ eventId: 'evt_handler', type: 'invoice.voided', payload: JSON.parse(body), sourceId: stripeSource.id, provider: 'stripe' }]);
      expect(await applied(acme, 'evt_handler')).toBe(1);
    });

    // In full: holds concurrent deliveries at the event id while the first is still applying: the
    // handler runs once
    it('holds concurrent deliveries at the event id: the handler runs once', async () => {
      let runs = 0;
      const service = createInboundService({
        db: h.t.db, audit: h.built.services.audit, clock: h.clock, sealer: h.built.services.sealer,
        // A slow handler keeps the first transaction open while the others arrive.
        onEvent: async () => {
          runs++;
          await new Promise((r) => setTimeout(r, 50));
        },
      });
      const body = event('invoice.finalized', 'evt_slow_handler');
      const results = await Promise.all(Array.from({ length: 10 }, () =>
        service.receive(systemContext('inbound-test'), acme, stripeSource.id, { headers: stHeaders(body), body })));
      expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
      expect(runs).toBe(1);
      expect(await applied(acme, 'evt_slow_handler')).toBe(1);
    });
  });

  it('never shows a secret: not in answers, problems, logs or the audit trail', async () => {
    const logs = h.logs.join('\n');
    expect(logs).toContain('inbound delivery refused');
    const audit = JSON.stringify(await auditSelect(h, '*', ``));
    for (const s of SECRETS) {
      expect(answers.some((a) => a.includes(s)), s).toBe(false);
      expect(logs.includes(s), s).toBe(false);
      expect(audit.includes(s), s).toBe(false);
    }
  });
});
