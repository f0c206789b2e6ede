/**
 * Where an audit stream may send (issue 14): the webhook SSRF guard for HTTPS URLs and syslog
 * hosts alike (private, link-local and metadata addresses refused, loopback only with the
 * development opt-in, names of the operator's own network refused before any lookup), TLS
 * required for syslog in production, and bad input answered 400 problem+json with nothing written.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { checkSyslogTarget, inspectSyslogTarget } from '../../src/domains/audit-streams/destination.js';
import { createSyslogTransport } from '../../src/domains/audit-streams/index.js';
import { AppError } from '../../src/kernel/errors.js';
import { DEFAULT_POLICIES } from '../../src/http/rate-limit/policies.js';
import { createTestApp, RELAXED_LIMITS, type Problem, type TestApp } from '../support/app.js';
import { client, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';

const PROD = { allowLoopback: false, requireHttps: true, requireTls: true };

describe('syslog destinations', () => {
  it('are judged by the webhook guard: loopback only with the opt-in, never private or metadata', () => {
    for (const [host, reason] of [
      ['127.0.0.1', 'destination refused: loopback'], ['localhost', 'destination refused: loopback'], ['2130706433', 'destination refused: loopback'],
      ['[::1]', 'destination refused: loopback'], ['::ffff:127.0.0.1', 'destination refused: loopback'],
      ['10.1.2.3', 'destination refused: private'], ['169.254.169.254', 'destination refused: metadata'],
      ['metadata.google.internal', 'destination refused: metadata'], ['siem.internal', 'destination refused: private'],
      ['siem', 'destination refused: private'], ['0.0.0.0', 'destination refused: unspecified'],
    ] as const) {
      expect(inspectSyslogTarget(host, 6514, PROD), host).toMatchObject({ ok: false, reason });
    }
    expect(inspectSyslogTarget('127.0.0.1', 514, { allowLoopback: true, requireHttps: false })).toMatchObject({ ok: true, target: { host: '127.0.0.1', connectHost: '127.0.0.1', literal: true } });
    expect(inspectSyslogTarget('2130706433', 514, { allowLoopback: true, requireHttps: false })).toMatchObject({ ok: true, target: { host: '127.0.0.1' } });
    expect(inspectSyslogTarget('SIEM.Example.com', 6514, PROD)).toMatchObject({ ok: true, target: { host: 'siem.example.com', literal: false } });
    expect(inspectSyslogTarget('2001:4860:4860::8888', 6514, PROD)).toMatchObject({ ok: true, target: { host: '2001:4860:4860::8888', literal: true } });
    for (const host of ['a b', 'x/y', 'u@h', 'h?q', 'h#f', '', '-lead', 'trail-', 'h:1']) expect(inspectSyslogTarget(host, 6514, PROD).ok, host).toBe(false);
  });

  it('need TLS in production', () => {
    expect(() => checkSyslogTarget('siem.example.com', 514, false, PROD)).toThrow(AppError);
    expect(checkSyslogTarget('siem.example.com', 6514, true, PROD)).toMatchObject({ host: 'siem.example.com', port: 6514 });
  });

  it('are refused in clear at send time too in production (a row written before the rule)', async () => {
    const t = createSyslogTransport({ allowLoopback: false, requireTls: true, resolve: async () => [{ address: '203.0.113.9', family: 4 }] });
    expect(await t.send({ host: 'siem.example.com', port: 514, tls: false }, [Buffer.from('1 x')])).toMatchObject({ ok: false, error: 'tls_required' });
  });

  it('are checked again when sending: a name that resolves inside is refused before any connection', async () => {
    const t = createSyslogTransport({ allowLoopback: false, resolve: async () => [{ address: '10.0.0.7', family: 4 }] });
    expect(await t.send({ host: 'siem.example.com', port: 6514, tls: true }, [Buffer.from('1 x')])).toMatchObject({ ok: false, error: 'destination_refused_private' });
    const meta = createSyslogTransport({ allowLoopback: false, resolve: async () => [{ address: '203.0.113.9', family: 4 }, { address: '169.254.169.254', family: 4 }] });
    expect(await meta.send({ host: 'siem.example.com', port: 6514, tls: true }, [Buffer.from('1 x')])).toMatchObject({ ok: false, error: 'destination_refused_reserved' });
  });
});

describe.each(ENGINES)('audit stream input on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let admin: Client;
  async function addStream(body: Record<string, unknown>): Promise<{ stream: { id: string } }> {
    const res = await admin.call('POST', `/api/orgs/${acme}/audit/streams`, body);
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }
  const status = async (id: string) => (await admin.call('GET', `/api/orgs/${acme}/audit/streams/${id}`)).json<Record<string, unknown>>();

  beforeAll(async () => {
    h = await createTestApp(engine, { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true' } });
    acme = h.orgId('acme');
  });
  afterAll(async () => h?.close());
  beforeEach(async () => {
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
  });

  it('refuses private, metadata and malformed destinations and bad input with a 4xx problem, writing nothing', async () => {
    const bad: Record<string, unknown>[] = [
      { kind: 'https', url: 'http://169.254.169.254/latest/meta-data' },
      { kind: 'https', url: 'http://10.0.0.5/siem' },
      { kind: 'https', url: 'https://metadata.google.internal/' },
      { kind: 'https', url: 'ftp://siem.example.com/' },
      { kind: 'https', url: 'https://user:pw@siem.example.com/' },
      { kind: 'https', url: 'not a url' },
      { kind: 'syslog', host: '169.254.169.254', port: 514 },
      { kind: 'syslog', host: '192.168.1.10', port: 6514 },
      { kind: 'syslog', host: 'metadata.google.internal', port: 6514 },
      { kind: 'syslog', host: 'siem', port: 6514 },
      { kind: 'syslog', host: '[fd00:ec2::254]', port: 6514 },
      { kind: 'syslog', host: '2852039166', port: 6514 }, // 169.254.169.254
      { kind: 'syslog', host: 'siem.example.com/x', port: 6514 },
      { kind: 'syslog', host: 'user@siem.example.com', port: 6514 },
      { kind: 'syslog', host: 'siem.example.com', port: 0 },
      { kind: 'syslog', host: 'siem.example.com', port: 65536 },
      { kind: 'syslog', host: 'siem.example.com', port: '6514' },
      { kind: 'syslog', host: 'siem.example.com', port: 6514, url: 'https://x.example.com/' },
      { kind: 'syslog', host: '', port: 6514 },
      { kind: 'https' },
      { kind: 'kafka', url: 'https://siem.example.com/' },
      { url: 'https://siem.example.com/' },
      { kind: 'https', url: 'https://siem.example.com/', from: 'yesterday' },
      { kind: 'https', url: 'https://siem.example.com/', description: 'x'.repeat(201) },
    ];
    for (const body of bad) {
      const res = await admin.call('POST', `/api/orgs/${acme}/audit/streams`, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      expect(res.headers['content-type']).toContain('application/problem+json');
      expect(res.json<Problem>().code).toBe('validation_failed');
    }
    expect(await h.t.owner.query('select 1 from audit_streams')).toHaveLength(0);
    const { stream } = await addStream({ kind: 'syslog', host: '127.0.0.1', port: 6514, tls: false });
    for (const body of [{ url: 'https://siem.example.com/' }, { host: '10.1.2.3' }, { port: -1 }, { enabled: 'yes' }, { kind: 'https' }]) {
      const res = await admin.call('PATCH', `/api/orgs/${acme}/audit/streams/${stream.id}`, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
    }
    expect((await admin.call('POST', `/api/orgs/${acme}/audit/streams/${stream.id}/rotate-secret`)).statusCode).toBe(409);
    expect((await admin.call('GET', `/api/orgs/${acme}/audit/streams/not-a-uuid`)).statusCode).toBe(400);
    expect((await admin.call('GET', `/api/orgs/${acme}/audit/streams/00000000-0000-4000-8000-000000000000`)).statusCode).toBe(404);
    expect(await status(stream.id)).toMatchObject({ kind: 'syslog', enabled: true });
    // A cap per org.
    for (let i = 1; i < 5; i++) await addStream({ kind: 'https', url: `https://siem${i}.example.com/` });
    expect((await admin.call('POST', `/api/orgs/${acme}/audit/streams`, { kind: 'https', url: 'https://siem6.example.com/' })).statusCode).toBe(409);
  });
});

/**
 * A test event's answer says whether a host's port answered, refused, timed out or spoke TLS:
 * under its own limit (the default, 20 per 10 minutes per actor) it cannot be turned into a port
 * scanner, whatever the destination is changed to.
 */
describe.runIf(ENGINES.includes('postgres'))('audit stream test events', () => {
  let h: TestApp;
  beforeAll(async () => {
    const { limit, windowSeconds } = DEFAULT_POLICIES['outbound-test'];
    h = await createTestApp('postgres', {
      config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true', RATE_LIMITS: RELAXED_LIMITS.replace('outbound-test=100000/60', `outbound-test=${limit}/${windowSeconds}`) },
    });
  });
  afterAll(async () => h?.close());

  it('are limited per actor under their own policy', async () => {
    const acme = h.orgId('acme');
    const admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    const made = await admin.call('POST', `/api/orgs/${acme}/audit/streams`, { kind: 'syslog', host: '127.0.0.1', port: 9, tls: false, enabled: false });
    expect(made.statusCode, made.body).toBe(201);
    const url = `/api/orgs/${acme}/audit/streams/${made.json<{ stream: { id: string } }>().stream.id}/test`;
    const answers: number[] = [];
    for (let i = 0; i <= DEFAULT_POLICIES['outbound-test'].limit; i++) answers.push((await admin.call('POST', url)).statusCode);
    expect(answers.slice(0, -1).every((s) => s === 200)).toBe(true);
    expect(answers.at(-1)).toBe(429);
    // The rest of the stream routes are not held back by it.
    expect((await admin.call('GET', `/api/orgs/${acme}/audit/streams`)).statusCode).toBe(200);
  });
});
