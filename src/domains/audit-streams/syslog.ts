import net, { isIP, type LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { defaultResolver, networkError, pinnedLookup, resolveChecked, type Resolver } from '../webhooks/index.js';
import { inspectSyslogTarget } from './destination.js';
import { errorCode, type StreamOutcome } from './outcome.js';

export interface SyslogTransportOptions {
  /** The development and test opt-in (config `webhooks.allowLoopback`); production refuses it. */
  allowLoopback: boolean;
  /** Deadline for DNS + connect + handshake + writing the batch + the peer's close. */
  timeoutMs?: number;
  resolve?: Resolver;
  /**
   * Trusted CAs instead of Node's bundle (tests and benchmarks, with a self-signed receiver).
   * Deployments with a private CA use NODE_EXTRA_CA_CERTS, which adds to the bundle.
   */
  ca?: string | Buffer | (string | Buffer)[];
  /** After our FIN, how long to wait for the receiver's before the batch counts as written. */
  closeGraceMs?: number;
  /** Production: plain TCP is refused at send time too, not only when the stream is created. */
  requireTls?: boolean;
}

export interface SyslogDestination {
  host: string;
  port: number;
  tls: boolean;
}

export interface SyslogTransport {
  /** Sends the frames on a connection of their own; ok once written, flushed and closed without a reset. */
  send(to: SyslogDestination, frames: readonly Buffer[]): Promise<StreamOutcome>;
}

/**
 * Syslog over TCP or TLS (RFC 5425 / RFC 6587 octet counting) behind the webhook guard: the
 * host is inspected like a webhook URL's, a name is resolved once, every answer checked, and
 * the socket pinned to the checked addresses; TLS verifies the certificate against the name.
 *
 * Syslog has no acknowledgement. A batch counts as delivered when every byte was handed to the
 * kernel, our FIN sent after them, and the receiver closed its side (or stayed silent for
 * closeGraceMs) without resetting the connection: a receiver that crashes before reading what
 * it was sent resets, and the batch is sent again. What it read and then lost is not.
 */
export function createSyslogTransport(opts: SyslogTransportOptions): SyslogTransport {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const resolve = opts.resolve ?? defaultResolver();
  const closeGraceMs = opts.closeGraceMs ?? 2000;

  async function send(to: SyslogDestination, frames: readonly Buffer[]): Promise<StreamOutcome> {
    const started = performance.now();
    const done = (error: string | null): StreamOutcome => ({ ok: error === null, error, latencyMs: Math.round(performance.now() - started) });
    if (!to.tls && opts.requireTls) return done('tls_required');
    const r = inspectSyslogTarget(to.host, to.port, { allowLoopback: opts.allowLoopback, requireHttps: false });
    if (!r.ok) return done(errorCode(r.reason));
    const deadline = AbortSignal.timeout(timeoutMs);
    let lookup: LookupFunction | undefined;
    if (isIP(r.target.connectHost) === 0) {
      if (r.target.literal) return done('destination_refused_reserved');
      const timedOut = new Promise<null>((settle) => deadline.addEventListener('abort', () => settle(null), { once: true }));
      const checked = await Promise.race([resolveChecked(r.target.connectHost, resolve, opts.allowLoopback), timedOut]);
      if (checked === null) return done('timeout');
      if (!checked.ok) return done(errorCode(checked.error));
      lookup = pinnedLookup(r.target.connectHost, checked.addresses);
    }
    const error = await write(r.target.connectHost, to.port, to.tls, lookup, Buffer.concat(frames), deadline);
    return done(error);
  }

  function write(host: string, port: number, useTls: boolean, lookup: LookupFunction | undefined, payload: Buffer, deadline: AbortSignal): Promise<string | null> {
    return new Promise((settle) => {
      let finished = false;
      let grace: NodeJS.Timeout | null = null;
      const finish = (error: string | null): void => {
        if (finished) return;
        finished = true;
        if (grace) clearTimeout(grace);
        deadline.removeEventListener('abort', onAbort);
        socket.destroy();
        settle(error);
      };
      const onAbort = (): void => finish('timeout');
      const socket = useTls
        ? tls.connect({
          host, port, lookup,
          // SNI and the certificate check use the name; an IP literal is checked against the certificate's IP SANs.
          servername: isIP(host) === 0 ? host : undefined,
          ...(opts.ca ? { ca: opts.ca } : {}),
        })
        : net.connect({ host, port, lookup });
      deadline.addEventListener('abort', onAbort, { once: true });
      if (deadline.aborted) onAbort();
      let flushed = false;
      socket.once(useTls ? 'secureConnect' : 'connect', () => {
        // end(): the batch, then our FIN; 'finish' once the kernel has all of it.
        socket.end(payload);
      });
      socket.once('finish', () => {
        flushed = true;
        grace = setTimeout(() => finish(null), closeGraceMs);
      });
      // Anything the receiver sends is ignored (syslog receivers answer nothing).
      socket.on('data', () => undefined);
      socket.once('close', (hadError) => finish(flushed && !hadError ? null : 'connection_reset'));
      socket.on('error', (err) => finish(errorCode(networkError(err))));
    });
  }

  return { send };
}
