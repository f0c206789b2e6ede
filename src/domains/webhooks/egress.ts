import http from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import { defaultResolver, networkError, pinnedLookup, resolveChecked, type Resolver } from './transport.js';
import { inspectDestinationUrl } from './destination.js';

/** A request another domain sends to a URL a tenant chose (an identity provider's discovery, token and key endpoints). */
export interface EgressRequest {
  method?: string;
  headers?: Record<string, string>;
  body?: string | URLSearchParams;
  signal?: AbortSignal;
}

export interface EgressOptions {
  /** The development and test opt-in to loopback addresses; production refuses it. */
  allowLoopback: boolean;
  timeoutMs?: number;
  /** Response bytes kept; a longer answer fails (an identity provider's JSON is a few kilobytes). */
  maxResponseBytes?: number;
  resolve?: Resolver;
}

/** Why an egress request failed, in fixed wording (never what the peer sent). */
export class EgressRefused extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'EgressRefused';
  }
}

/**
 * fetch() for tenant-chosen URLs, behind the webhook transport's SSRF guard: the URL is
 * inspected, the name resolved once and every answer checked (private, link-local, metadata and
 * — outside development — loopback addresses refused), and the socket pinned to those answers.
 * Redirects are not followed; the body is capped; one deadline covers everything.
 */
export function createEgressFetch(opts: EgressOptions): (url: string, init?: EgressRequest) => Promise<Response> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const maxBytes = opts.maxResponseBytes ?? 512 * 1024;
  const resolve = opts.resolve ?? defaultResolver();
  return async (url, init = {}) => {
    const target = inspectDestinationUrl(url, { allowLoopback: opts.allowLoopback, requireHttps: false });
    if (!target.ok) throw new EgressRefused(target.refused ? target.reason : `invalid url (${target.reason})`);
    const deadline = AbortSignal.any([AbortSignal.timeout(timeoutMs), ...(init.signal ? [init.signal] : [])]);
    let lookup: LookupFunction | undefined;
    if (isIP(target.host) === 0) {
      // The deadline covers the lookup too: a slow authoritative server must not hold the caller.
      const timedOut = new Promise<null>((done) => deadline.addEventListener('abort', () => done(null), { once: true }));
      const checked = await Promise.race([resolveChecked(target.host, resolve, opts.allowLoopback), timedOut]);
      if (checked === null) throw new EgressRefused('timeout');
      if (!checked.ok) throw new EgressRefused(checked.error);
      lookup = pinnedLookup(target.host, checked.addresses);
    } else if (!target.literal) {
      throw new EgressRefused('destination refused: reserved');
    }
    const body = init.body === undefined ? undefined : String(init.body);
    return new Promise<Response>((settle, fail) => {
      const request = target.url.protocol === 'https:' ? https.request : http.request;
      const req = request({
        protocol: target.url.protocol, host: target.host, port: target.url.port === '' ? undefined : Number(target.url.port),
        path: `${target.url.pathname}${target.url.search}`, method: init.method ?? 'GET',
        headers: { ...init.headers, ...(body === undefined ? {} : { 'content-length': String(Buffer.byteLength(body)) }) },
        agent: false, lookup, signal: deadline,
      });
      req.on('error', (err) => fail(deadline.aborted ? new EgressRefused('timeout') : new EgressRefused(networkError(err))));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size > maxBytes) {
            req.destroy();
            fail(new EgressRefused('response too large'));
          } else chunks.push(chunk);
        });
        res.on('end', () => {
          const headers = new Headers();
          for (const [name, value] of Object.entries(res.headers)) {
            if (typeof value === 'string') headers.set(name, value);
            else if (Array.isArray(value)) for (const v of value) headers.append(name, v);
          }
          const status = res.statusCode ?? 0;
          if (status < 200 || status > 599) {
            fail(new EgressRefused('invalid http response'));
            return;
          }
          // Response refuses a body on these statuses.
          const empty = status === 204 || status === 304 || (status >= 100 && status < 200);
          settle(new Response(empty ? null : Buffer.concat(chunks), { status, headers }));
        });
        res.on('error', () => fail(new EgressRefused('connection reset')));
      });
      req.end(body);
    });
  };
}
