import { promises as dns } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import { InvariantError } from '../../kernel/errors.js';
import { classifyAddress, inspectDestinationUrl, isAllowed, type AddressKind } from './destination.js';

/**
 * Outbound webhook HTTP transport with its SSRF guard. The hostname is resolved once, every
 * answer is checked, and the socket is handed exactly those answers through a pinned lookup,
 * so a DNS answer that changes between check and connect (rebinding) cannot move the connection.
 */

export interface ResolvedAddress {
  address: string;
  family: number;
}

export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

export interface WebhookTransportOptions {
  /** The development and test opt-in (config `webhooks.allowLoopback`); production refuses it. */
  allowLoopback: boolean;
  /** Deadline for DNS + connect + response headers + reading the capped body. */
  timeoutMs?: number;
  resolve?: Resolver;
  /** Response bytes read (and discarded) before the connection is dropped. */
  maxResponseBytes?: number;
  /** Refuse plain-http destinations (production receivers). */
  requireHttps?: boolean;
}

export interface DeliveryOutcome {
  ok: boolean;
  status: number | null;
  latencyMs: number;
  /** Short, fixed wording: never the request body, headers, or anything the receiver sent but its status. */
  error: string | null;
  /** The address actually connected to, when a connection was made. */
  address: string | null;
}

/** What another sender over this transport (audit streams: NDJSON batches) says its body is, and who it is. */
export interface SendOptions {
  contentType?: string;
  userAgent?: string;
}

export interface WebhookTransport {
  send(url: string, headers: Record<string, string>, body: string, options?: SendOptions): Promise<DeliveryOutcome>;
}

export const USER_AGENT = 'Palisade-Webhooks/1';
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024;
// The transport owns framing and identity; a caller setting these would change what is checked or sent.
const OWNED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'content-type', 'user-agent']);

/**
 * Destinations are resolved with c-ares (dns.Resolver: its own timeout and tries, no libuv
 * threadpool), not getaddrinfo: a tenant whose names sit on a deliberately slow authoritative
 * server would otherwise hold the threadpool's four threads on every attempt, stalling argon2
 * and every other tenant's lookups in the same process (review S3 W-5). localhost names are
 * loopback by definition (RFC 6761) and answered here, like the hosts file would.
 */
export function defaultResolver(): Resolver {
  const resolver = new dns.Resolver({ timeout: 2000, tries: 2 });
  return async (host) => {
    const name = host.toLowerCase().replace(/\.$/, '');
    if (name === 'localhost' || name.endsWith('.localhost')) return [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }];
    const [v4, v6] = await Promise.allSettled([resolver.resolve4(name), resolver.resolve6(name)]);
    const answers = [
      ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 })) : []),
      ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 })) : []),
    ];
    if (answers.length === 0) throw new Error('no address');
    return answers;
  };
}

export type Checked = { ok: true; addresses: ResolvedAddress[] } | { ok: false; error: string };

export async function resolveChecked(host: string, resolve: Resolver, allowLoopback: boolean): Promise<Checked> {
  let answers: ResolvedAddress[];
  try {
    answers = await resolve(host);
  } catch {
    return { ok: false, error: 'dns lookup failed' };
  }
  if (!Array.isArray(answers) || answers.length === 0) return { ok: false, error: 'dns lookup failed' };
  const addresses: ResolvedAddress[] = [];
  for (const answer of answers) {
    const family = isIP(String(answer.address));
    // One bad answer refuses the whole name: picking the good one would still let an attacker
    // who controls the zone steer some deliveries inside.
    const kind: AddressKind = family === 0 ? 'reserved' : classifyAddress(answer.address);
    if (!isAllowed(kind, allowLoopback)) return { ok: false, error: `destination refused: ${kind}` };
    addresses.push({ address: answer.address, family });
  }
  return { ok: true, addresses };
}

/** A lookup for node:net that never queries DNS: it answers with the addresses already checked. */
export function pinnedLookup(host: string, addresses: readonly ResolvedAddress[]): LookupFunction {
  return (hostname, options, callback) => {
    const wanted = options.family === 4 || options.family === 6 ? addresses.filter((a) => a.family === options.family) : addresses;
    process.nextTick(() => {
      if (hostname !== host || wanted.length === 0) {
        const err: NodeJS.ErrnoException = new Error('pinned lookup has no answer');
        err.code = 'ENOTFOUND';
        callback(err, '', 0);
      } else if (options.all) {
        callback(null, wanted.map((a) => ({ address: a.address, family: a.family })));
      } else {
        const first = wanted[0] as ResolvedAddress;
        callback(null, first.address, first.family);
      }
    });
  };
}

const NETWORK_ERRORS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ENOTFOUND: 'dns lookup failed',
  EAI_AGAIN: 'dns lookup failed',
  ENETUNREACH: 'network unreachable',
  EHOSTUNREACH: 'host unreachable',
  ETIMEDOUT: 'timeout',
};

/** Maps a Node error to fixed wording; err.message is never used (it may quote what the peer sent). */
export function networkError(err: unknown): string {
  const code = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : '';
  const known = NETWORK_ERRORS[code];
  if (known) return known;
  if (code.startsWith('HPE_')) return 'invalid http response';
  if (code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)) return 'tls error';
  return /^[A-Z0-9_]{1,40}$/.test(code) ? `network error (${code})` : 'network error';
}

function checkHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (OWNED_HEADERS.has(name.toLowerCase())) throw new InvariantError(`webhook transport sets ${name.toLowerCase()} itself`);
    try {
      http.validateHeaderName(name);
      http.validateHeaderValue(name, value);
    } catch {
      // The name only: the value may be a signature.
      throw new InvariantError(`invalid webhook header: ${name.slice(0, 64)}`);
    }
    out[name] = value;
  }
  return out;
}

export function createWebhookTransport(opts: WebhookTransportOptions): WebhookTransport {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  const resolve = opts.resolve ?? defaultResolver();
  if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new InvariantError('timeoutMs must be a positive integer');
  if (!Number.isInteger(maxResponseBytes) || maxResponseBytes < 0) throw new InvariantError('maxResponseBytes must be a non-negative integer');

  async function send(url: string, headers: Record<string, string>, body: string, options: SendOptions = {}): Promise<DeliveryOutcome> {
    if (typeof body !== 'string') throw new InvariantError('webhook body must be a string');
    const callerHeaders = checkHeaders(headers);
    const started = performance.now();
    const outcome = (o: Omit<DeliveryOutcome, 'latencyMs'>): DeliveryOutcome => ({ ...o, latencyMs: Math.round(performance.now() - started) });
    const failure = (error: string): DeliveryOutcome => outcome({ ok: false, status: null, error, address: null });

    const target = inspectDestinationUrl(url, { allowLoopback: opts.allowLoopback, requireHttps: opts.requireHttps ?? false });
    if (!target.ok) return failure(target.refused ? target.reason : `invalid destination (${target.reason})`);

    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), timeoutMs);
    try {
      let lookup: LookupFunction | undefined;
      if (isIP(target.host) === 0) {
        const timedOut = new Promise<null>((done) => deadline.signal.addEventListener('abort', () => done(null), { once: true }));
        const checked = await Promise.race([resolveChecked(target.host, resolve, opts.allowLoopback), timedOut]);
        if (checked === null) return failure('timeout');
        if (!checked.ok) return failure(checked.error);
        lookup = pinnedLookup(target.host, checked.addresses);
      } else if (!target.literal) {
        // node:net would connect to this host without a lookup: it must have been classified.
        return failure('destination refused: reserved');
      }
      const result = await deliver(target.url, target.host, lookup, callerHeaders, body, deadline.signal, maxResponseBytes, options);
      return outcome(result);
    } finally {
      clearTimeout(timer);
    }
  }

  return { send };
}

function deliver(
  url: URL,
  host: string,
  lookup: LookupFunction | undefined,
  headers: Record<string, string>,
  body: string,
  signal: AbortSignal,
  maxResponseBytes: number,
  options: SendOptions,
): Promise<Omit<DeliveryOutcome, 'latencyMs'>> {
  return new Promise((settle) => {
    let done = false;
    let address: string | null = null;
    let status: number | null = null;
    const finish = (ok: boolean, error: string | null): void => {
      if (done) return;
      done = true;
      signal.removeEventListener('abort', onAbort);
      settle({ ok, status, error, address });
      // Nothing more is wanted from this peer; with agent: false the socket dies with the request.
      req.destroy();
    };
    const onAbort = (): void => finish(false, 'timeout');

    const request = url.protocol === 'https:' ? https.request : http.request;
    const req = request({
      protocol: url.protocol,
      host,
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method: 'POST',
      headers: {
        ...headers,
        'content-type': options.contentType ?? 'application/json',
        'user-agent': options.userAgent ?? USER_AGENT,
        'content-length': String(Buffer.byteLength(body)),
      },
      // A fresh socket per delivery: a kept-alive one could lead to an address checked for another URL.
      agent: false,
      lookup,
      // Host and TLS SNI/verification stay the URL's hostname (node derives both from `host`).
    });
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();

    req.on('socket', (socket) => {
      socket.once('connect', () => {
        address = socket.remoteAddress ?? null;
      });
    });
    req.on('error', (err) => finish(false, networkError(err)));
    req.on('response', (res) => {
      status = res.statusCode ?? null;
      const code = status ?? 0;
      const ok = code >= 200 && code < 300;
      const error = ok ? null : code >= 300 && code < 400 ? `redirect not followed (${code})` : `http status ${code}`;
      let received = 0;
      res.on('data', (chunk: Buffer) => {
        received += chunk.length;
        // The receiver's answer is only acknowledged, never kept: past the cap, stop reading.
        if (received > maxResponseBytes) finish(ok, error);
      });
      res.on('end', () => finish(ok, error));
      res.on('error', () => finish(false, 'connection reset'));
      res.on('close', () => {
        if (!res.complete) finish(false, 'connection reset');
      });
    });
    req.end(body);
  });
}
