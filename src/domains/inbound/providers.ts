import { Webhook } from 'standardwebhooks';
import { hmacSha256, safeEqual } from '../../crypto/index.js';
import { AppError } from '../../kernel/errors.js';

/**
 * The extension point for inbound webhooks: one InboundProvider per signature scheme. To add a
 * provider, implement this interface (checks in the order below, every refusal through
 * `rejectDelivery`), add it to BUILTIN_PROVIDERS, and extend the `provider` check of
 * inbound_sources in a migration. See docs/architecture.md, "Inbound webhooks".
 */
export interface InboundProvider {
  /** Stored with the source; lower case. */
  readonly name: string;
  /** Whether `secret` has the shape this provider hands out (checked when a source is created). */
  acceptsSecret(secret: string): boolean;
  /**
   * Checks the signature over the exact body and its timestamp against `now` (within
   * TOLERANCE_SECONDS either way), and only then parses the body. Throws DeliveryRejected for
   * anything about the signature, malformed_request for a signed body that is not an event.
   */
  verify(headers: InboundHeaders, rawBody: string, secret: string, now: Date): InboundEvent;
}

/** Request headers as Node delivers them: lower-case names; a repeated header is an array. */
export type InboundHeaders = Readonly<Record<string, string | string[] | undefined>>;

export interface InboundEvent {
  /** The provider's id of the event, the same on every retry: the idempotency key. */
  eventId: string;
  type: string;
  payload: Record<string, unknown>;
}

/** Five minutes either way, as Stripe and Standard Webhooks specify. */
export const TOLERANCE_SECONDS = 300;

/** Why a delivery was refused: for the server log only; the client always sees the same answer. */
export type RejectReason =
  | 'unknown_source'
  | 'missing_header'
  | 'malformed_header'
  | 'stale_timestamp'
  | 'bad_signature';

/** The one answer to every refused delivery: no oracle on which part (or whether the source) was wrong. */
export const REJECTED_DETAIL = 'the delivery is not signed by this source, or its timestamp is outside the tolerance';

export class DeliveryRejected extends AppError {
  constructor(readonly reason: RejectReason) {
    super('token_invalid', REJECTED_DETAIL);
  }
}

export function rejectDelivery(reason: RejectReason): never {
  throw new DeliveryRejected(reason);
}

/** A header present exactly once; anything else counts as missing (repeats are refused, not merged). */
export function singleHeader(headers: InboundHeaders, name: string): string {
  const v = headers[name];
  if (v === undefined || v === '') rejectDelivery('missing_header');
  if (typeof v !== 'string') rejectDelivery('malformed_header');
  return v;
}

/** Unix seconds as digits only (no sign, exponent or spaces), within the tolerance of `now`. */
export function freshTimestamp(value: string, now: Date): number {
  if (!/^[0-9]{1,12}$/.test(value)) rejectDelivery('malformed_header');
  const t = Number(value);
  if (Math.abs(Math.floor(now.getTime() / 1000) - t) > TOLERANCE_SECONDS) rejectDelivery('stale_timestamp');
  return t;
}

/** Visible ASCII, bounded: ids are stored and shown in the audit trail. */
const EVENT_ID = /^[\x21-\x7e]{1,255}$/;
const EVENT_TYPE = /^[\x21-\x7e]{1,200}$/;
/** More signatures than any rotation needs is a malformed header, not more work. */
const MAX_SIGNATURES = 10;

/** Parses a verified body: a JSON object with a string `type`. Runs only after the signature matched. */
function parseEvent(rawBody: string): Pick<InboundEvent, 'type' | 'payload'> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(rawBody);
  } catch {
    throw new AppError('malformed_request', 'the event is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new AppError('malformed_request', 'the event is not a JSON object');
  const payload = parsed as Record<string, unknown>;
  if (typeof payload.type !== 'string' || !EVENT_TYPE.test(payload.type)) throw new AppError('malformed_request', 'the event has no valid "type"');
  return { type: payload.type, payload };
}

/** True when any candidate equals `expected`; every candidate is compared in constant time. */
function anyMatches(candidates: readonly string[], expected: string): boolean {
  let found = false;
  for (const c of candidates) found = safeEqual(c, expected) || found;
  return found;
}

/**
 * Standard Webhooks (https://www.standardwebhooks.com): `webhook-id`, `webhook-timestamp`,
 * `webhook-signature: v1,<base64> [v1,<base64> …]` over `id.timestamp.body`, secret `whsec_`
 * + base64 of 24 to 64 bytes. The package computes the signature; the tolerance is checked here
 * against the injected clock because the package's own verify reads the wall clock.
 */
export const standardWebhooks: InboundProvider = {
  name: 'standard',
  acceptsSecret(secret) {
    const m = /^whsec_([A-Za-z0-9+/]+={0,2})$/.exec(secret);
    if (!m?.[1]) return false;
    const key = Buffer.from(m[1], 'base64');
    return key.toString('base64') === m[1] && key.length >= 24 && key.length <= 64;
  },
  verify(headers, rawBody, secret, now) {
    const id = singleHeader(headers, 'webhook-id');
    const timestamp = singleHeader(headers, 'webhook-timestamp');
    const signature = singleHeader(headers, 'webhook-signature');
    if (!EVENT_ID.test(id)) rejectDelivery('malformed_header');
    const t = freshTimestamp(timestamp, now);
    const candidates = signature.split(' ').filter((s) => s !== '');
    if (candidates.length === 0 || candidates.length > MAX_SIGNATURES) rejectDelivery('malformed_header');
    const v1 = candidates.filter((s) => s.startsWith('v1,')).map((s) => s.slice(3));
    const expected = new Webhook(secret).sign(id, new Date(t * 1000), rawBody).slice('v1,'.length);
    if (!anyMatches(v1, expected)) rejectDelivery('bad_signature');
    return { eventId: id, ...parseEvent(rawBody) };
  },
};

/**
 * Stripe (https://docs.stripe.com/webhooks#verify-manually): `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…]`,
 * the hex HMAC-SHA256 of `t.body` keyed with the whole `whsec_…` secret. Other schemes in the
 * header (v0) are ignored, as Stripe's libraries do. The event id is the body's `id`.
 */
export const stripe: InboundProvider = {
  name: 'stripe',
  acceptsSecret: (secret) => /^whsec_[A-Za-z0-9]{32,200}$/.test(secret),
  verify(headers, rawBody, secret, now) {
    const items = singleHeader(headers, 'stripe-signature').split(',');
    if (items.length > MAX_SIGNATURES + 2) rejectDelivery('malformed_header');
    const timestamps: string[] = [];
    const v1: string[] = [];
    for (const item of items) {
      const eq = item.indexOf('=');
      if (eq <= 0) rejectDelivery('malformed_header');
      const key = item.slice(0, eq).trim();
      const value = item.slice(eq + 1).trim();
      if (key === 't') timestamps.push(value);
      else if (key === 'v1') v1.push(value);
    }
    if (timestamps.length !== 1 || v1.length === 0) rejectDelivery('malformed_header');
    const t = freshTimestamp(timestamps[0] as string, now);
    const expected = hmacSha256(Buffer.from(secret, 'utf8'), `${t}.${rawBody}`).toString('hex');
    if (!anyMatches(v1, expected)) rejectDelivery('bad_signature');
    const event = parseEvent(rawBody);
    const id = event.payload.id;
    if (typeof id !== 'string' || !EVENT_ID.test(id)) throw new AppError('malformed_request', 'the event has no valid "id"');
    return { eventId: id, ...event };
  },
};

export const BUILTIN_PROVIDERS: readonly InboundProvider[] = [standardWebhooks, stripe];
