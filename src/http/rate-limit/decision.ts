import type { RateLimitDecision } from './types.js';

/**
 * One place turns a count into a decision, so that the Redis and memory implementations cannot
 * drift apart. `count` includes this hit when it was admitted; `resetMs` is how long until the
 * oldest counted hit leaves the window.
 */
export function decide(limit: number, allowed: boolean, count: number, resetMs: number): RateLimitDecision {
  const resetSeconds = Math.max(0, Math.ceil(resetMs / 1000));
  return {
    allowed,
    limit,
    remaining: Math.max(0, limit - count),
    resetSeconds,
    // A refused client is told at least one second: `Retry-After: 0` invites a tight retry loop.
    retryAfterSeconds: allowed ? 0 : Math.max(1, resetSeconds),
    failedOpen: false,
  };
}

/** Redis unreachable: allow, and say nothing we do not know (see rateLimitHeaders). */
export function failOpenDecision(limit: number): RateLimitDecision {
  return { allowed: true, limit, remaining: limit, resetSeconds: 0, retryAfterSeconds: 0, failedOpen: true };
}

/**
 * RateLimit-Limit / -Remaining / -Reset (IETF httpapi draft names) and Retry-After when refused.
 * A fail-open decision carries no headers: the counts are unknown and made-up numbers would
 * mislead clients that pace themselves on them.
 */
export function rateLimitHeaders(d: RateLimitDecision): Record<string, string> {
  if (d.failedOpen) return {};
  const h: Record<string, string> = {
    'RateLimit-Limit': String(d.limit),
    'RateLimit-Remaining': String(d.remaining),
    'RateLimit-Reset': String(d.resetSeconds),
  };
  if (!d.allowed) h['Retry-After'] = String(d.retryAfterSeconds);
  return h;
}
