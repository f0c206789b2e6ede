import ipaddr from 'ipaddr.js';

/**
 * Address lists (admin IP allowlists): IPv4 and IPv6 addresses and CIDR ranges. An IPv4
 * address seen as IPv4-mapped IPv6 (::ffff:a.b.c.d, what a dual-stack socket reports) is
 * matched as the IPv4 address it is.
 */
export function normalizeCidr(entry: string): string | null {
  const text = entry.trim();
  try {
    if (text.includes('/')) {
      if (!ipaddr.isValidCIDR(text)) return null;
      const [addr, bits] = ipaddr.parseCIDR(text);
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
