import type { RateLimitPolicy } from '../route.js';
import { decide } from './decision.js';
import { storageKey } from './key.js';
import type { PolicyTable, RateLimitDecision, RateLimiter } from './types.js';

export interface MemoryLimiterDeps {
  policies: PolicyTable;
  keyPrefix: string;
  clock: { now(): Date };
  maxKeys: number;
}

/**
 * The fallback when no REDIS_URL is set (one process, development, tests): the same sliding log
 * as the Lua script, per process. Only admitted hits are recorded, so a refused client is
 * admitted again as soon as its oldest admitted hit is older than the window.
 *
 * Memory is bounded twice: a key holds at most `limit` timestamps, and at most `maxKeys` keys are
 * kept. The Map's insertion order doubles as recency (a hit re-inserts its key), so eviction
 * drops the key used least recently — usually one whose window has long passed. Evicting a live
 * key forgets its count; flooding distinct keys to do so costs the attacker `maxKeys` hits first.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly logs = new Map<string, number[]>();

  constructor(private readonly d: MemoryLimiterDeps) {}

  hit(policy: RateLimitPolicy, parts: readonly string[]): Promise<RateLimitDecision> {
    const { limit, windowSeconds } = this.d.policies[policy];
    const key = storageKey(this.d.keyPrefix, policy, parts);
    const now = this.d.clock.now().getTime();
    const windowMs = windowSeconds * 1000;
    const log = this.take(key);
    // The window is (now - windowMs, now]: a hit exactly windowMs old no longer counts.
    let expired = 0;
    while (expired < log.length && (log[expired] ?? 0) <= now - windowMs) expired++;
    if (expired > 0) log.splice(0, expired);
    const allowed = log.length < limit;
    if (allowed) log.push(now);
    this.put(key, log);
    const oldest = log[0];
    const resetMs = oldest === undefined ? 0 : oldest + windowMs - now;
    return Promise.resolve(decide(limit, allowed, log.length, resetMs));
  }

  close(): Promise<void> {
    this.logs.clear();
    return Promise.resolve();
  }

  /** Number of keys held (for tests of the cap). */
  get size(): number {
    return this.logs.size;
  }

  private take(key: string): number[] {
    const log = this.logs.get(key);
    if (log) this.logs.delete(key);
    return log ?? [];
  }

  private put(key: string, log: number[]): void {
    if (log.length === 0) return;
    this.logs.set(key, log);
    while (this.logs.size > this.d.maxKeys) {
      const lru = this.logs.keys().next();
      if (lru.done) break;
      this.logs.delete(lru.value);
    }
  }
}
