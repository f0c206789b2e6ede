import { sha256Hex } from '../../crypto/index.js';
import type { RateLimitPolicy } from '../route.js';

export const DEFAULT_KEY_PREFIX = 'palisade:rl:';

/**
 * `${prefix}${policy}:${sha256}`: emails and IPs never reach Redis or a heap dump in clear.
 * The parts are JSON-encoded before hashing so that the join is unambiguous
 * (['a:b', 'c'] and ['a', 'b:c'] are different keys).
 */
export function storageKey(prefix: string, policy: RateLimitPolicy, parts: readonly string[]): string {
  return `${prefix}${policy}:${sha256Hex(JSON.stringify(parts))}`;
}
