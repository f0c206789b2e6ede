import ipaddr from 'ipaddr.js';
import { AppError } from '../../kernel/errors.js';

/**
 * Where a webhook may be delivered. Only global unicast is 'public'; every other kind names
 * why a destination is refused. Anything not clearly global unicast is refused, so a range
 * this table forgets fails closed.
 */
export type AddressKind =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'multicast'
  | 'metadata'
  | 'reserved'
  | 'unspecified';

export interface DestinationOptions {
  /** The development and test opt-in (config `webhooks.allowLoopback`): production refuses it. */
  allowLoopback: boolean;
  requireHttps: boolean;
}

export const MAX_URL_LENGTH = 2048;

type Row<T> = readonly [T, number, AddressKind];

function rows<T extends ipaddr.IPv4 | ipaddr.IPv6>(parse: (cidr: string) => [T, number], spec: readonly (readonly [string, AddressKind])[]): Row<T>[] {
  return spec.map(([cidr, kind]) => {
    const [addr, bits] = parse(cidr);
    return [addr, bits, kind] as const;
  });
}

// First match wins: single metadata addresses come before the ranges that contain them.
const V4 = rows((c) => ipaddr.IPv4.parseCIDR(c), [
  ['169.254.169.254/32', 'metadata'], // AWS, GCP, Azure, OCI, DigitalOcean instance metadata
  ['169.254.170.2/32', 'metadata'], // AWS ECS task credentials
  ['100.100.100.200/32', 'metadata'], // Alibaba Cloud metadata
  ['168.63.129.16/32', 'metadata'], // Azure WireServer: a public-looking address only VMs reach
  ['0.0.0.0/8', 'unspecified'], // Linux connects 0.0.0.0 to this host
  ['10.0.0.0/8', 'private'],
  ['100.64.0.0/10', 'private'], // CGNAT: the provider's internal network
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['172.16.0.0/12', 'private'],
  ['192.0.0.0/24', 'reserved'],
  ['192.0.2.0/24', 'reserved'],
  ['192.88.99.0/24', 'reserved'], // deprecated 6to4 relay anycast
  ['192.168.0.0/16', 'private'],
  ['198.18.0.0/15', 'reserved'],
  ['198.51.100.0/24', 'reserved'],
  ['203.0.113.0/24', 'reserved'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved'], // includes 255.255.255.255
]);

const V6 = rows((c) => ipaddr.IPv6.parseCIDR(c), [
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['fd00:ec2::254/128', 'metadata'], // AWS IPv6 instance metadata
  ['64:ff9b:1::/48', 'reserved'], // local-use NAT64: its embedding is site-specific
  ['fc00::/7', 'private'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'private'], // deprecated site-local
  ['ff00::/8', 'multicast'],
  ['2001:db8::/32', 'reserved'],
  ['2001::/23', 'reserved'], // IETF assignments: Teredo 2001::/32, ORCHID, benchmarking…
  ['3fff::/20', 'reserved'], // documentation (RFC 9637)
  ['2000::/3', 'public'],
]);

function match<T extends ipaddr.IPv4 | ipaddr.IPv6>(addr: T, table: readonly Row<T>[]): AddressKind | null {
  for (const [range, bits, kind] of table) if (addr.match(range, bits)) return kind;
  return null;
}

function v4FromParts(hi: number, lo: number): ipaddr.IPv4 {
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
}

function classify6(addr: ipaddr.IPv6): AddressKind {
  const p = addr.parts;
  // Forms that carry an IPv4 address are judged by it: ::ffff:127.0.0.1 is 127.0.0.1 on a
  // dual-stack socket, and a NAT64 or 6to4 gateway forwards to the embedded address.
  if (addr.isIPv4MappedAddress()) return match(addr.toIPv4Address(), V4) ?? 'public';
  if (addr.match(ipaddr.IPv6.parseCIDR('64:ff9b::/96'))) return match(v4FromParts(p[6] ?? 0, p[7] ?? 0), V4) ?? 'public';
  if (addr.match(ipaddr.IPv6.parseCIDR('2002::/16'))) return match(v4FromParts(p[1] ?? 0, p[2] ?? 0), V4) ?? 'public';
  const exact = match(addr, V6);
  if (exact) return exact;
  // IPv4-compatible ::a.b.c.d is deprecated: no legitimate receiver uses it, so even a public
  // embedded address is refused, and a non-public one is reported as what it embeds.
  if (addr.match(ipaddr.IPv6.parseCIDR('::/96'))) {
    const embedded = match(v4FromParts(p[6] ?? 0, p[7] ?? 0), V4);
    return embedded ?? 'reserved';
  }
  return 'reserved';
}

/**
 * Classifies a textual IP address. Only the plain dotted-quad IPv4 spelling is read as an
 * address (ipaddr.js would also read "127.1" or octal "010.0.0.1" = 8.0.0.1); anything that
 * does not parse strictly is 'reserved', i.e. refused, never guessed at.
 */
export function classifyAddress(ip: string): AddressKind {
  const text = ip.trim();
  const zone = text.indexOf('%');
  const bare = zone === -1 ? text : text.slice(0, zone);
  if (!bare.includes(':')) {
    if (zone !== -1 || !ipaddr.IPv4.isValidFourPartDecimal(bare)) return 'reserved';
    return match(ipaddr.IPv4.parse(bare), V4) ?? 'public';
  }
  let hex = bare;
  const tail = bare.slice(bare.lastIndexOf(':') + 1);
  if (tail.includes('.')) {
    if (!ipaddr.IPv4.isValidFourPartDecimal(tail)) return 'reserved';
    // ipaddr.js reads "::8.8.8.8" as mapped ::ffff:8.8.8.8; the kernel reads it as the
    // IPv4-compatible ::808:808. Rewriting the dotted tail in hex gets the kernel's reading.
    const [a = 0, b = 0, c = 0, d = 0] = ipaddr.IPv4.parse(tail).octets;
    hex = `${bare.slice(0, bare.length - tail.length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  if (!ipaddr.IPv6.isValid(hex)) return 'reserved';
  const kind = classify6(ipaddr.IPv6.parse(hex));
  // A zone only makes sense for link-local scope; on anything else it is an oddity to refuse.
  return zone !== -1 && kind === 'public' ? 'reserved' : kind;
}

export function isAllowed(kind: AddressKind, allowLoopback: boolean): boolean {
  return kind === 'public' || (kind === 'loopback' && allowLoopback);
}

/**
 * Names refused before any DNS query: they resolve through the worker's own resolver, hosts
 * file or search domains, so they name the operator's machines rather than a tenant's.
 */
export function classifyHostname(hostname: string): AddressKind | null {
  const name = hostname.toLowerCase().replace(/\.$/, '');
  if (name === 'localhost' || name.endsWith('.localhost')) return 'loopback';
  if (['localhost.localdomain', 'ip6-localhost', 'ip6-loopback'].includes(name)) return 'loopback';
  const metadata = ['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal'];
  if (metadata.includes(name)) return 'metadata';
  if (name === 'internal' || name.endsWith('.internal') || name.endsWith('.local') || name.endsWith('.home.arpa')) return 'private';
  // A single label is completed by the worker's search domains: an internal host.
  if (!name.includes('.')) return 'private';
  return null;
}

export type DestinationInspection =
  | {
      ok: true;
      url: URL;
      /** The hostname without IPv6 brackets, as node:net expects it. */
      host: string;
      /** True when host is an IP literal (already classified and allowed): no DNS needed. */
      literal: boolean;
    }
  | { ok: false; refused: AddressKind | null; reason: string };

function fail(reason: string): DestinationInspection {
  return { ok: false, refused: null, reason };
}

function refuse(kind: AddressKind): DestinationInspection {
  return { ok: false, refused: kind, reason: `destination refused: ${kind}` };
}

/** The non-throwing form of checkDestinationUrl, for the transport (which reports, never throws). */
export function inspectDestinationUrl(raw: string, opts: DestinationOptions): DestinationInspection {
  if (raw.length > MAX_URL_LENGTH) return fail('url too long');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return fail('invalid url');
  }
  if (url.href.length > MAX_URL_LENGTH) return fail('url too long');
  if (opts.requireHttps ? url.protocol !== 'https:' : url.protocol !== 'https:' && url.protocol !== 'http:') {
    return fail(opts.requireHttps ? 'url must use https' : 'url must use http or https');
  }
  if (url.username || url.password) return fail('url must not contain credentials');
  // href rather than hash: "https://x/#" keeps an empty fragment that hash reports as ''.
  if (url.href.includes('#')) return fail('url must not contain a fragment');
  if (!url.hostname) return fail('url must have a host');
  if (url.port !== '' && (Number(url.port) < 1 || Number(url.port) > 65535)) return fail('port out of range');

  // The WHATWG parser already turned 2130706433, 0x7f.1 and %31%32%37.0.0.1 into a
  // dotted quad, and IPv6 into its bracketed canonical form.
  const bracketed = url.hostname.startsWith('[');
  const host = bracketed ? url.hostname.slice(1, -1) : url.hostname;
  const literal = bracketed || ipaddr.IPv4.isValidFourPartDecimal(host);
  const kind = literal ? classifyAddress(host) : classifyHostname(host);
  if (kind !== null && !isAllowed(kind, opts.allowLoopback)) return refuse(kind);
  return { ok: true, url, host, literal };
}

/**
 * Syntactic check of a webhook URL, for registration and for delivery. A host given as an IP
 * is judged here; a name is judged again by the transport on what it resolves to.
 */
export function checkDestinationUrl(raw: string, opts: DestinationOptions): URL {
  const r = inspectDestinationUrl(raw, opts);
  if (!r.ok) {
    // The transport keeps the bare reason (delivery logs); a person registering a URL also
    // learns how a local receiver is allowed in development.
    const hint = r.refused === 'loopback' && !opts.allowLoopback ? ' (a development server allows it with PALISADE_WEBHOOKS_ALLOW_LOOPBACK=true)' : '';
    throw new AppError('validation_failed', `${r.reason}${hint}`);
  }
  return r.url;
}
