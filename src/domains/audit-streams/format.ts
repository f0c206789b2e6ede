import type { AuditEventView } from '../audit/index.js';

/** One event as a stream sends it: the trail's view of it, with the org it belongs to. */
export interface StreamEvent extends AuditEventView {
  orgId: string;
}

/** The event as one JSON object: a line of an NDJSON batch, and the MSG of a syslog message. */
export function eventJson(e: StreamEvent): string {
  return JSON.stringify({
    orgId: e.orgId, seq: e.seq, id: e.id, at: e.at, actor: e.actor, action: e.action, target: e.target, result: e.result,
    ip: e.ip, userAgent: e.userAgent, requestId: e.requestId, details: e.details, personal: e.personal, hash: e.hash,
  });
}

/** An HTTPS batch: one event per line (application/x-ndjson), each line ending in \n. */
export function ndjsonBatch(events: readonly StreamEvent[]): string {
  return events.map((e) => `${eventJson(e)}\n`).join('');
}

/**
 * The SD-ID of the event's structured data. Names without an "@" are reserved to IANA (RFC 5424
 * §7.2), so ours carries an enterprise number: 32473, the one RFC 5612 sets aside for examples
 * and documentation, until the project registers its own. Receivers match on the whole SD-ID.
 */
export const SD_ID = 'palisade@32473';
const FACILITY_LOG_AUDIT = 13;
/** Severity by result: a refusal is a notice, a failure a warning, the rest informational. */
const SEVERITY: Readonly<Record<string, number>> = { success: 6, denied: 5, failure: 4 };

/** PARAM-VALUE escaping (RFC 5424 §6.3.3): '"', '\' and ']' are escaped with a backslash. */
function paramValue(v: string): string {
  return v.replace(/["\\\]]/g, (c) => `\\${c}`);
}

/** A header field: printable US-ASCII without spaces, at most `max` long, or the NILVALUE. */
function headerField(v: string, max: number): string {
  const clean = v.replace(/[^\x21-\x7e]/g, '').slice(0, max);
  return clean === '' ? '-' : clean;
}

/**
 * One RFC 5424 message: PRI (facility log audit), VERSION 1, the event's time, the deployment's
 * host name, APP-NAME palisade, MSGID the action, the event's fields as structured data, and
 * the whole event as JSON in MSG (UTF-8, so with the BOM §6.4 asks for): details are nested,
 * and structured data is flat.
 */
export function syslogMessage(e: StreamEvent, hostname: string): string {
  const pri = FACILITY_LOG_AUDIT * 8 + (SEVERITY[e.result] ?? 6);
  const params: [string, string | number | null][] = [
    ['org', e.orgId], ['seq', e.seq], ['id', e.id], ['action', e.action], ['result', e.result],
    ['actorType', e.actor.type], ['actorId', e.actor.id], ['actorRole', e.actor.role],
    ['targetType', e.target?.type ?? null], ['targetId', e.target?.id ?? null],
    ['ip', e.ip], ['userAgent', e.userAgent], ['requestId', e.requestId], ['hash', e.hash],
  ];
  const sd = params
    .filter((p): p is [string, string | number] => p[1] !== null && p[1] !== '')
    .map(([k, v]) => `${k}="${paramValue(String(v))}"`)
    .join(' ');
  return `<${pri}>1 ${e.at} ${headerField(hostname, 255)} palisade - ${headerField(e.action, 32)} [${SD_ID} ${sd}] \uFEFF${eventJson(e)}`;
}

/** Octet-counting framing (RFC 6587 §3.4.1): the message's length in bytes, a space, the message. */
export function octetFrame(message: string): Buffer {
  const body = Buffer.from(message, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length} `, 'ascii'), body]);
}
