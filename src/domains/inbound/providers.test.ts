import { Webhook } from 'standardwebhooks';
import { describe, expect, it, vi } from 'vitest';
import { hmacSha256 } from '../../crypto/index.js';
import { AppError } from '../../kernel/errors.js';
import { DeliveryRejected, standardWebhooks, stripe, TOLERANCE_SECONDS, type InboundHeaders, type InboundProvider } from './providers.js';

// Every signature candidate must go through the constant-time compare: wrap it to count calls.
const compared = vi.hoisted(() => ({ calls: [] as [string, string][] }));
vi.mock('../../crypto/index.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../../crypto/index.js')>();
  return {
    ...real,
    safeEqual: (a: string, b: string) => {
      compared.calls.push([a, b]);
      return real.safeEqual(a, b);
    },
  };
});

const NOW = new Date('2026-03-01T12:00:00.000Z');
const NOW_S = Math.floor(NOW.getTime() / 1000);
const SW_SECRET = `whsec_${Buffer.alloc(32, 3).toString('base64')}`;
const SW_OTHER = `whsec_${Buffer.alloc(32, 4).toString('base64')}`;
const ST_SECRET = 'whsec_0123456789abcdefghijABCDEFGHIJklmnopqrst';
const BODY = JSON.stringify({ id: 'evt_1', type: 'invoice.paid', data: { amount: 4200 } });

function swHeaders(opts: { secret?: string; id?: string; at?: number; body?: string } = {}): Record<string, string> {
  const id = opts.id ?? 'msg_2Lh9K';
  const at = opts.at ?? NOW_S;
  const signature = new Webhook(opts.secret ?? SW_SECRET).sign(id, new Date(at * 1000), opts.body ?? BODY);
  return { 'webhook-id': id, 'webhook-timestamp': String(at), 'webhook-signature': signature };
}

// src/ may not import node:crypto; test/webhooks/inbound.test.ts signs independently with createHmac.
function stripeSig(at: number, body: string, secret = ST_SECRET): string {
  return hmacSha256(Buffer.from(secret, 'utf8'), `${at}.${body}`).toString('hex');
}

function stHeaders(opts: { secret?: string; at?: number; body?: string } = {}): Record<string, string> {
  const at = opts.at ?? NOW_S;
  return { 'stripe-signature': `t=${at},v1=${stripeSig(at, opts.body ?? BODY, opts.secret)}` };
}

/** The refusal a provider throws: the reason for the log, or the AppError code, or 'accepted'. */
function outcome(p: InboundProvider, headers: InboundHeaders, body = BODY, secret = p === stripe ? ST_SECRET : SW_SECRET, now = NOW): string {
  try {
    p.verify(headers, body, secret, now);
    return 'accepted';
  } catch (err) {
    if (err instanceof DeliveryRejected) {
      expect(err.code).toBe('token_invalid');
      return err.reason;
    }
    if (err instanceof AppError) return err.code;
    throw err;
  }
}

const flip = (s: string, i: number) => `${s.slice(0, i)}${s[i] === 'A' || s[i] === 'a' ? 'b' : 'a'}${s.slice(i + 1)}`;

describe('Standard Webhooks provider', () => {
  it('accepts an event signed by the standardwebhooks library and returns its id, type and payload', () => {
    const event = standardWebhooks.verify(swHeaders(), BODY, SW_SECRET, NOW);
    expect(event).toEqual({ eventId: 'msg_2Lh9K', type: 'invoice.paid', payload: JSON.parse(BODY) });
  });

  // In full: accepts any one matching v1 signature among several (secret rotation), and compares
  // every candidate in constant time
  it('accepts any one matching v1 signature among several, in constant time', () => {
    const good = swHeaders()['webhook-signature'] as string;
    const old = swHeaders({ secret: SW_OTHER })['webhook-signature'] as string;
    compared.calls.length = 0;
    const headers = { ...swHeaders(), 'webhook-signature': `${old} v2,abc ${good} ${old}` };
    expect(outcome(standardWebhooks, headers)).toBe('accepted');
    // Three v1 candidates, three constant-time comparisons: no early exit, no other comparison.
    expect(compared.calls.map(([a]) => a)).toEqual([old.slice(3), good.slice(3), old.slice(3)]);
    expect(outcome(standardWebhooks, { ...headers, 'webhook-signature': `${old} v2,${good.slice(3)}` })).toBe('bad_signature');
  });

  it('refuses a tampered body, a tampered signature and the wrong secret', () => {
    expect(outcome(standardWebhooks, swHeaders(), BODY.replace('4200', '4201'))).toBe('bad_signature');
    const sig = swHeaders()['webhook-signature'] as string;
    for (const i of [3, 10, sig.length - 2]) {
      expect(outcome(standardWebhooks, { ...swHeaders(), 'webhook-signature': flip(sig, i) }), `flip at ${i}`).toBe('bad_signature');
    }
    expect(outcome(standardWebhooks, { ...swHeaders(), 'webhook-signature': sig.slice(0, -4) })).toBe('bad_signature');
    expect(outcome(standardWebhooks, swHeaders(), BODY, SW_OTHER)).toBe('bad_signature');
    // The id and timestamp are signed too.
    expect(outcome(standardWebhooks, { ...swHeaders(), 'webhook-id': 'msg_other' })).toBe('bad_signature');
    expect(outcome(standardWebhooks, { ...swHeaders(), 'webhook-timestamp': String(NOW_S - 1) })).toBe('bad_signature');
  });

  it('refuses missing, repeated and malformed headers', () => {
    for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
      const h: Record<string, string | string[]> = swHeaders();
      delete h[name];
      expect(outcome(standardWebhooks, h), `without ${name}`).toBe('missing_header');
      expect(outcome(standardWebhooks, { ...swHeaders(), [name]: '' }), `empty ${name}`).toBe('missing_header');
      const value = swHeaders()[name] as string;
      expect(outcome(standardWebhooks, { ...swHeaders(), [name]: [value, value] }), `repeated ${name}`).toBe('malformed_header');
    }
    for (const ts of ['abc', '-1', '1e9', ` ${NOW_S}`, `${NOW_S}.5`, '9'.repeat(13)]) {
      expect(outcome(standardWebhooks, { ...swHeaders(), 'webhook-timestamp': ts }), ts).toBe('malformed_header');
    }
    expect(outcome(standardWebhooks, swHeaders({ id: 'msg with spaces' }))).toBe('malformed_header');
    expect(outcome(standardWebhooks, swHeaders({ id: 'x'.repeat(256) }))).toBe('malformed_header');
    expect(outcome(standardWebhooks, { ...swHeaders(), 'webhook-signature': '   ' })).toBe('malformed_header');
    expect(outcome(standardWebhooks, { ...swHeaders(), 'webhook-signature': Array(11).fill('v1,x').join(' ') })).toBe('malformed_header');
  });

  it('accepts five minutes either way of the injected clock, and not one second more', () => {
    for (const [offset, want] of [[-TOLERANCE_SECONDS, 'accepted'], [TOLERANCE_SECONDS, 'accepted'], [-TOLERANCE_SECONDS - 1, 'stale_timestamp'],
      [TOLERANCE_SECONDS + 1, 'stale_timestamp'], [-360, 'stale_timestamp'], [360, 'stale_timestamp']] as const) {
      expect(outcome(standardWebhooks, swHeaders({ at: NOW_S + offset })), `offset ${offset}`).toBe(want);
    }
    // The clock is the injected one, not the wall clock: a timestamp from 2026 is fresh at NOW, whatever today is.
    expect(outcome(standardWebhooks, swHeaders(), BODY, SW_SECRET, new Date(NOW.getTime() + 301_000))).toBe('stale_timestamp');
  });

  // In full: parses the body only after the signature matched: signed garbage is malformed_request,
  // unsigned garbage is a refusal
  it('parses the body only after the signature matched', () => {
    for (const body of ['not json', '[1,2]', '"text"', 'null', '{}', '{"type":""}', '{"type":42}', '']) {
      expect(outcome(standardWebhooks, swHeaders({ body }), body), body).toBe('malformed_request');
      expect(outcome(standardWebhooks, swHeaders(), body), body).toBe('bad_signature');
    }
  });

  it('checks the shape of secrets: whsec_ and the canonical base64 of 24 to 64 bytes', () => {
    const of = (n: number) => `whsec_${Buffer.alloc(n, 1).toString('base64')}`;
    expect([23, 24, 32, 64, 65].map((n) => standardWebhooks.acceptsSecret(of(n)))).toEqual([false, true, true, true, false]);
    expect(standardWebhooks.acceptsSecret(Buffer.alloc(32, 1).toString('base64'))).toBe(false);
    expect(standardWebhooks.acceptsSecret(`${of(32)}=`)).toBe(false);
    expect(standardWebhooks.acceptsSecret(`${of(32)} `)).toBe(false);
    expect(standardWebhooks.acceptsSecret('whsec_!!!!')).toBe(false);
  });
});

describe('Stripe provider', () => {
  it('accepts an event signed per Stripe\u2019s scheme; the event id is the body\u2019s id', () => {
    expect(stripe.verify(stHeaders(), BODY, ST_SECRET, NOW)).toEqual({ eventId: 'evt_1', type: 'invoice.paid', payload: JSON.parse(BODY) });
  });

  it('accepts one matching v1 among several and ignores v0; every v1 is compared in constant time', () => {
    const good = stripeSig(NOW_S, BODY);
    const other = stripeSig(NOW_S, BODY, 'whsec_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ');
    compared.calls.length = 0;
    expect(outcome(stripe, { 'stripe-signature': `t=${NOW_S},v1=${other},v1=${good},v0=${good}` })).toBe('accepted');
    expect(compared.calls.map(([a]) => a)).toEqual([other, good]);
    expect(outcome(stripe, { 'stripe-signature': `t=${NOW_S},v1=${other},v0=${good}` })).toBe('bad_signature');
    expect(outcome(stripe, { 'stripe-signature': `t=${NOW_S},v0=${good}` })).toBe('malformed_header');
  });

  it('refuses a tampered body, a tampered signature and the wrong secret', () => {
    expect(outcome(stripe, stHeaders(), BODY.replace('4200', '4201'))).toBe('bad_signature');
    const good = stripeSig(NOW_S, BODY);
    for (const i of [0, 31, 63]) expect(outcome(stripe, { 'stripe-signature': `t=${NOW_S},v1=${flip(good, i)}` })).toBe('bad_signature');
    expect(outcome(stripe, { 'stripe-signature': `t=${NOW_S},v1=${good.toUpperCase()}` })).toBe('bad_signature');
    expect(outcome(stripe, { 'stripe-signature': `t=${NOW_S},v1=${good.slice(0, 40)}` })).toBe('bad_signature');
    expect(outcome(stripe, stHeaders({ secret: 'whsec_ZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ' }))).toBe('bad_signature');
    // The timestamp is signed: moving it breaks the signature.
    expect(outcome(stripe, { 'stripe-signature': `t=${NOW_S - 1},v1=${good}` })).toBe('bad_signature');
  });

  it('refuses missing and malformed headers', () => {
    const good = stripeSig(NOW_S, BODY);
    expect(outcome(stripe, {})).toBe('missing_header');
    expect(outcome(stripe, swHeaders())).toBe('missing_header');
    for (const header of [`v1=${good}`, `t=${NOW_S}`, `t=${NOW_S},t=${NOW_S},v1=${good}`, `t=${NOW_S},v1`, `t=${NOW_S};v1=${good}`,
      `t=abc,v1=${good}`, `t=-${NOW_S},v1=${good}`, `=x,t=${NOW_S},v1=${good}`, `t=${NOW_S},${Array(12).fill(`v1=${good}`).join(',')}`]) {
      expect(outcome(stripe, { 'stripe-signature': header }), header).toBe('malformed_header');
    }
    expect(outcome(stripe, { 'stripe-signature': [`t=${NOW_S},v1=${good}`, `t=${NOW_S},v1=${good}`] })).toBe('malformed_header');
  });

  it('accepts five minutes either way of the injected clock, and not one second more', () => {
    for (const [offset, want] of [[-TOLERANCE_SECONDS, 'accepted'], [TOLERANCE_SECONDS, 'accepted'], [-TOLERANCE_SECONDS - 1, 'stale_timestamp'],
      [TOLERANCE_SECONDS + 1, 'stale_timestamp'], [-360, 'stale_timestamp'], [360, 'stale_timestamp']] as const) {
      expect(outcome(stripe, stHeaders({ at: NOW_S + offset })), `offset ${offset}`).toBe(want);
    }
  });

  it('needs a JSON object with an id and a type once the signature matched', () => {
    for (const body of ['not json', '[]', '{"type":"x"}', '{"id":"evt_1"}', '{"id":"has space","type":"x"}', '{"id":7,"type":"x"}']) {
      expect(outcome(stripe, stHeaders({ body }), body), body).toBe('malformed_request');
    }
  });

  it('checks the shape of secrets: whsec_ and at least 32 letters and digits', () => {
    expect(stripe.acceptsSecret(ST_SECRET)).toBe(true);
    expect(stripe.acceptsSecret(`whsec_${'a'.repeat(31)}`)).toBe(false);
    expect(stripe.acceptsSecret(`whsec_${'a'.repeat(64)}`)).toBe(true);
    expect(stripe.acceptsSecret('a'.repeat(40))).toBe(false);
    expect(stripe.acceptsSecret(`whsec_${'a'.repeat(31)}+`)).toBe(false);
  });
});
