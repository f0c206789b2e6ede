import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRfc5424 } from '../../../test/audit-streams/receivers.js';
import { eventJson, ndjsonBatch, octetFrame, SD_ID, syslogMessage, type StreamEvent } from './format.js';
import { errorCode } from './outcome.js';

const event = (over: Partial<StreamEvent> = {}): StreamEvent => ({
  orgId: '0b6f9a4e-8f1c-4a55-9a8e-2f7c1d3e4b5a', seq: 42, id: '7d1c5e2a-3b4f-4c6d-8e9f-0a1b2c3d4e5f', at: '2026-12-06T19:30:00.123Z',
  actor: { type: 'user', id: 'u1', role: 'admin' }, action: 'member.role_changed', target: { type: 'membership', id: 'm1' }, result: 'success',
  ip: '203.0.113.7', userAgent: 'Mozilla/5.0', requestId: 'req-1', details: { role: 'viewer' }, personal: 'open', hash: 'abc', ...over,
});

describe('audit stream formats', () => {
  it('writes one JSON object per line, each line ending in a newline', () => {
    const body = ndjsonBatch([event(), event({ seq: 43, details: { note: 'two\nlines' } })]);
    const lines = body.split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('');
    expect(lines.slice(0, 2).map((l) => (JSON.parse(l) as { seq: number }).seq)).toEqual([42, 43]);
  });

  it('frames RFC 5424 messages by their length in bytes, not characters', () => {
    const frame = octetFrame('<110>1 - - - - - - \u00e9');
    const sp = frame.indexOf(0x20);
    expect(Number(frame.subarray(0, sp).toString())).toBe(frame.length - sp - 1);
  });

  it('puts facility log audit, severity by result, the action as MSGID and the event as structured data and JSON', () => {
    const m = parseRfc5424(syslogMessage(event({ result: 'denied' }), 'palisade.example.com'));
    expect(m).toMatchObject({ pri: 13 * 8 + 5, version: 1, timestamp: '2026-12-06T19:30:00.123Z', hostname: 'palisade.example.com', appName: 'palisade', msgId: 'member.role_changed' });
    expect(m.sd[SD_ID]).toMatchObject({ seq: '42', actorRole: 'admin', targetType: 'membership', ip: '203.0.113.7' });
    expect(JSON.parse(m.msg)).toEqual(JSON.parse(eventJson(event({ result: 'denied' }))));
    expect(parseRfc5424(syslogMessage(event({ result: 'failure' }), 'h')).pri).toBe(13 * 8 + 4);
  });

  it('escapes structured data and keeps header fields printable, whatever the event holds', () => {
    const text = fc.string({ unit: 'binary', maxLength: 40 });
    fc.assert(
      fc.property(text, text, text, text, (ua, actorId, action, host) => {
        const e = event({ userAgent: ua, actor: { type: 'user', id: actorId, role: null }, action });
        const m = parseRfc5424(syslogMessage(e, host));
        // Structured data round-trips (empty values are left out), MSG carries the event exactly.
        expect(m.sd[SD_ID]?.userAgent).toBe(ua === '' ? undefined : ua);
        expect(m.sd[SD_ID]?.actorId).toBe(actorId === '' ? undefined : actorId);
        expect(JSON.parse(m.msg)).toEqual(JSON.parse(eventJson(e)));
        expect(m.msgId).toMatch(/^[\x21-\x7e]{1,32}$/);
        expect(m.hostname).toMatch(/^[\x21-\x7e]{1,255}$/);
      }),
      { numRuns: 300 },
    );
  });

  it('turns the transports\u2019 fixed wording into short codes', () => {
    expect(errorCode('connection refused')).toBe('connection_refused');
    expect(errorCode('http status 503')).toBe('http_status_503');
    expect(errorCode('destination refused: metadata')).toBe('destination_refused_metadata');
    expect(errorCode('network error (ECONNABORTED)')).toBe('network_error_econnaborted');
    expect(errorCode('invalid destination (url must use https)')).toMatch(/^[a-z0-9_]{1,32}$/);
    expect(errorCode('')).toBe('network_error');
  });
});
