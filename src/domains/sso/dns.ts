import { Resolver } from 'node:dns/promises';

/** What a TXT lookup found: the records (each one's strings joined), none, or why it failed. */
export type TxtAnswer = { kind: 'records'; records: string[] } | { kind: 'none' } | { kind: 'failed'; reason: string };

/** How domain verification reads DNS; `dnsTxtLookup` is the real one, tests point it at a server on loopback. */
export type TxtLookup = (name: string) => Promise<TxtAnswer>;

// Codes under which the name has no TXT record: the owner has not published it (yet).
const ABSENT = new Set(['ENODATA', 'ENOTFOUND', 'NOTFOUND', 'ENONAME']);

/**
 * TXT lookups through `servers` (the system's resolvers when empty), bounded in time: an
 * unreachable server costs the caller about five seconds, not the resolver's default minute.
 */
export function dnsTxtLookup(servers: readonly string[]): TxtLookup {
  const resolver = new Resolver({ timeout: 2_500, tries: 2 });
  if (servers.length > 0) resolver.setServers([...servers]);
  return async (name) => {
    try {
      const found = await resolver.resolveTxt(name);
      return found.length === 0 ? { kind: 'none' } : { kind: 'records', records: found.map((chunks) => chunks.join('')) };
    } catch (err) {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'string' && ABSENT.has(code)) return { kind: 'none' };
      return { kind: 'failed', reason: typeof code === 'string' ? code : 'lookup error' };
    }
  };
}
