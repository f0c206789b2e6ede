import ipaddr from 'ipaddr.js';

/**
 * Address lists (admin IP allowlists): IPv4 and IPv6 addresses and CIDR ranges. An IPv4
 * address seen as IPv4-mapped IPv6 (::ffff:a.b.c.d, what a dual-stack socket reports) is
 * matched as the IPv4 address it is.
 */
export function normalizeCidr(entry: string): string | null {
  const text = entry.trim();
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  // Only the plain dotted-quad spelling of IPv4 (also inside ::ffff:a.b.c.d): ipaddr.js also
  // parses "10.1", "0x0a.0.0.1" and octal "010.0.0.1" (= 8.0.0.1), so an allowlist silently
  // admitted another address than the one the admin typed. Such entries are refused instead.
  const dotted = addrText.slice(addrText.lastIndexOf(':') + 1);
  if ((dotted.includes('.') || !addrText.includes(':')) && !ipaddr.IPv4.isValidFourPartDecimal(dotted)) return null;
  try {
    if (slash !== -1) {
      if (!ipaddr.isValidCIDR(text)) return null;
      const [addr, bits] = ipaddr.parseCIDR(text);
      // An IPv4-mapped range (::ffff:192.0.2.0/120) is the IPv4 range it covers: clients are
      // matched as IPv4 (ipInList processes ::ffff:a.b.c.d to a.b.c.d), so kept as IPv6 it
      // never matched anyone.
      if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
        return `${(addr as ipaddr.IPv6).toIPv4Address().toString()}/${bits - 96}`;
      }
      return `${addr.toString()}/${bits}`;
    }
    if (!ipaddr.isValid(text)) return null;
    const addr = ipaddr.process(text);
    return `${addr.toString()}/${addr.kind() === 'ipv4' ? 32 : 128}`;
  } catch {
    return null;
  }
}

export function ipInList(ip: string, list: readonly string[]): boolean {
  if (!ipaddr.isValid(ip)) return false;
  const addr = ipaddr.process(ip);
  for (const entry of list) {
    const cidr = normalizeCidr(entry);
    if (!cidr) continue;
    const [range, bits] = ipaddr.parseCIDR(cidr);
    if (range.kind() === addr.kind() && addr.match(range, bits)) return true;
  }
  return false;
}

/**
 * The address a per-address rate limit counts. IPv4 as itself, also when a dual-stack socket
 * reports it IPv4-mapped (one client, one key). IPv6 by its /64: that is what one subscriber is
 * routed (RFC 6177), and every address in it is theirs to use, so counting single IPv6
 * addresses gave a client 2^64 fresh budgets. Anything unparsable is counted as given.
 */
export function rateLimitSubject(ip: string): string {
  if (!ipaddr.isValid(ip)) return ip;
  const addr = ipaddr.process(ip);
  if (addr.kind() === 'ipv4') return addr.toString();
  const parts = (addr as ipaddr.IPv6).parts.slice(0, 4).map((p) => p.toString(16));
  return `${parts.join(':')}::/64`;
}

/**
 * The allocation an IPv6 address belongs to for rate limiting: its /48, what one site or one
 * tunnel-broker account is given (65,536 /64s). Null for IPv4 (and anything unparsable): an IPv4
 * address is scarce and counted as itself; a /24 holds 256 of them and is often shared by
 * unrelated customers (CGNAT, hosting), so it is not counted as one client (review R5 finding A).
 */
export function rateLimitAllocation(ip: string): string | null {
  if (!ipaddr.isValid(ip)) return null;
  const addr = ipaddr.process(ip);
  if (addr.kind() === 'ipv4') return null;
  const parts = (addr as ipaddr.IPv6).parts.slice(0, 3).map((p) => p.toString(16));
  return `${parts.join(':')}::/48`;
}
