import { systemClock } from '../../kernel/clock.js';
import { DEFAULT_KEY_PREFIX } from './key.js';
import { MemoryRateLimiter } from './memory.js';
import { OutageLog } from './outage-log.js';
import { resolvePolicies } from './policies.js';
import { RedisRateLimiter } from './redis.js';
import type { RateLimiter, RateLimiterOptions } from './types.js';

export type { LimitHit, PolicyLimit, PolicyTable, RateLimitDecision, RateLimiter, RateLimiterOptions } from './types.js';
export { DEFAULT_POLICIES } from './policies.js';
export { rateLimitHeaders } from './decision.js';

/**
 * Counters kept in memory per policy. At about 250 bytes a counter (limit 10), a full policy
 * holds some 12 MB, however many addresses an attacker brings.
 */
export const DEFAULT_MEMORY_KEYS_PER_POLICY = 50_000;

/**
 * Redis when a URL is configured (shared by every instance), else the per-process memory log.
 * A Redis hit that fails open (Redis down, or this process too busy to read its answer within
 * the deadline) is still counted by a per-process memory log with the same policy: an attacker
 * who floods until Redis answers late does not thereby lift the limit on this instance.
 */
export function createRateLimiter(opts: RateLimiterOptions): RateLimiter {
  const policies = resolvePolicies(opts.policies);
  const keyPrefix = opts.keyPrefix ?? DEFAULT_KEY_PREFIX;
  const memory = new MemoryRateLimiter({
    policies,
    keyPrefix,
    clock: opts.clock ?? systemClock,
    maxKeysPerPolicy: opts.maxMemoryKeysPerPolicy ?? DEFAULT_MEMORY_KEYS_PER_POLICY,
  });
  if (opts.redisUrl === null) return memory;
  const redis = new RedisRateLimiter({
    redisUrl: opts.redisUrl,
    policies,
    keyPrefix,
    failOpenTimeoutMs: opts.failOpenTimeoutMs ?? 50,
    outages: new OutageLog(opts.logger, opts.logIntervalMs ?? 60_000),
    onFailOpen: opts.onFailOpen ?? (() => undefined),
  });
  return {
    async hit(policy, parts, scale) {
      const d = await redis.hit(policy, parts, scale);
      if (!d.failedOpen) return d;
      const local = await memory.hit(policy, parts, scale);
      return { ...local, failedOpen: true };
    },
    async hitAll(keys) {
      const ds = await redis.hitAll(keys);
      if (!ds.some((d) => d.failedOpen)) return ds;
      return (await memory.hitAll(keys)).map((d) => ({ ...d, failedOpen: true }));
    },
    async close() {
      await redis.close();
      await memory.close();
    },
  };
}
