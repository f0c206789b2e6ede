/** Whether an IPv4 address falls in an allowlist entry (address or CIDR); IPv6 compared literally. Only warns: the server decides. */
function v4(ip: string): number | null {
  const parts = ip.trim().replace(/^::ffff:/, '').split('.');
  if (parts.length !== 4) return null;
  let n = 0;
  for (const p of parts) {
    const b = Number(p);
    if (!/^\d{1,3}$/.test(p) || b > 255) return null;
    n = n * 256 + b;
  }
  return n;
}

export function inEntry(ip: string, entry: string): boolean {
  const [base = '', bitsText] = entry.trim().split('/');
  const a = v4(ip);
  const b = v4(base);
  if (a === null || b === null) return ip.trim().toLowerCase() === base.toLowerCase();
  const bits = bitsText === undefined ? 32 : Number(bitsText);
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) return false;
  const size = 2 ** (32 - bits);
  return Math.floor(a / size) === Math.floor(b / size);
}

/** An empty list allows anywhere. */
export function allows(list: readonly string[], ip: string): boolean {
  return list.length === 0 || list.some((e) => inEntry(ip, e));
}
