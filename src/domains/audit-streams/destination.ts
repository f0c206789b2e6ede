import { AppError } from '../../kernel/errors.js';
import { checkDestinationUrl, inspectDestinationUrl, type DestinationOptions } from '../webhooks/index.js';

/** Where a stream sends: the webhook guard's rules, with TLS where webhooks require https. */
export interface StreamDestinationOptions extends DestinationOptions {
  /** Production: syslog only over TLS (the events carry addresses and names; plain TCP crosses the internet in clear). */
  requireTls: boolean;
}

export type SyslogTarget = {
  /** A name as the caller wrote it, lower-cased; an address in its canonical spelling (IPv6 without brackets). */
  host: string;
  port: number;
  /** The host node:net connects to (an IP literal or a name the transport resolves and checks). */
  connectHost: string;
  literal: boolean;
};

// A name (letters, digits, dots, dashes) or an IP literal; nothing a URL parser would read as
// userinfo, path or query. IPv6 is accepted bare or in brackets.
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[?[0-9A-Fa-f:.]{2,45}\]?)$/;

/**
 * Inspects a syslog host and port with the webhook guard (the same parser, the same address
 * table): the pair is read as the authority of an https URL, so 2130706433, 0x7f.1 and friends
 * become the dotted quad they mean before classification, exactly as for webhooks.
 */
export function inspectSyslogTarget(host: string, port: number, opts: DestinationOptions):
  { ok: true; target: SyslogTarget } | { ok: false; refused: boolean; reason: string } {
  if (!HOST.test(host)) return { ok: false, refused: false, reason: 'invalid host' };
  if (!Number.isInteger(port) || port < 1 || port > 65535) return { ok: false, refused: false, reason: 'port out of range' };
  const bare = host.replace(/^\[|\]$/g, '');
  const authority = bare.includes(':') ? `[${bare}]` : bare;
  const r = inspectDestinationUrl(`https://${authority}:${port}/`, opts);
  if (!r.ok) return { ok: false, refused: r.refused !== null, reason: r.reason };
  // An address is kept as the parser spelled it (2130706433 → 127.0.0.1): what is shown is what is used.
  return { ok: true, target: { host: r.literal ? r.host : bare.toLowerCase(), port, connectHost: r.host, literal: r.literal } };
}

/** For registration: a 400 naming the reason, with the development hint webhooks give. */
export function checkSyslogTarget(host: string, port: number, tls: boolean, opts: StreamDestinationOptions): SyslogTarget {
  if (!tls && opts.requireTls) throw new AppError('validation_failed', 'syslog must use TLS in production');
  const r = inspectSyslogTarget(host, port, opts);
  if (!r.ok) {
    const hint = r.reason === 'destination refused: loopback' && !opts.allowLoopback ? ' (a development server allows it with PALISADE_WEBHOOKS_ALLOW_LOOPBACK=true)' : '';
    throw new AppError('validation_failed', `${r.reason}${hint}`);
  }
  return r.target;
}

export function checkStreamUrl(url: string, opts: StreamDestinationOptions): string {
  return checkDestinationUrl(url, opts).toString();
}
