import { domainToASCII } from 'node:url';

/**
 * The one spelling of an email domain that Palisade stores and compares: lower case, IDNA
 * (punycode) for non-ASCII names, no trailing dot. Two spellings of one name (`Example.COM.`,
 * `bücher.example` and `xn--bcher-kva.example`) are one domain, so a claim cannot be doubled by
 * writing it differently, and a lookup by an address's domain finds it.
 *
 * Refused: IP addresses, single labels (`localhost`), labels that are empty, longer than 63,
 * or start or end with a hyphen, underscores and every other character DNS host names do not
 * carry, and names longer than 253; control, format and invisible characters (bidi overrides,
 * zero-width spaces) anywhere in the input.
 */
export function normalizeDomain(raw: string): string | null {
  if (raw.length === 0 || raw.length > 300) return null;
  const trimmed = raw.trim().replace(/\.$/, '');
  // IDNA would silently drop an invisible character; a name that displays as something else is refused instead.
  if (trimmed.length === 0 || /[\s/@:\p{Cc}\p{Cf}\p{Default_Ignorable_Code_Point}]/u.test(trimmed)) return null;
  const ascii = domainToASCII(trimmed.toLowerCase());
  if (!ascii || ascii.length > 253) return null;
  const labels = ascii.split('.');
  if (labels.length < 2) return null;
  if (!labels.every((l) => /^(?!-)[a-z0-9-]{1,63}(?<!-)$/.test(l))) return null;
  // A numeric last label is an IPv4 address (or part of one), never a public suffix.
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) return null;
  return ascii;
}

/** The domain of an email address in its stored spelling, or null. */
export function emailDomain(email: string): string | null {
  const at = email.lastIndexOf('@');
  return at < 1 ? null : normalizeDomain(email.slice(at + 1));
}

/**
 * An address in the one spelling accounts are stored under: trimmed, lower case, its domain as
 * emailDomain gives it (IDNA, no trailing dot). Null when the domain is not one.
 */
export function canonicalEmail(email: string): string | null {
  const trimmed = email.trim();
  const at = trimmed.lastIndexOf('@');
  const domain = emailDomain(trimmed);
  return at < 1 || !domain ? null : `${trimmed.slice(0, at).toLowerCase()}@${domain}`;
}
