import type { RateLimitPolicy } from '../route.js';
import { decide } from './decision.js';
import { storageKey } from './key.js';
import type { LimitHit, PolicyTable, RateLimitDecision, RateLimiter } from './types.js';

export interface MemoryLimiterDeps {
  policies: PolicyTable;
  keyPrefix: string;
  clock: { now(): Date };
  /** Counters kept per policy (each policy has its own store: filling one leaves the others alone). */
  maxKeysPerPolicy: number;
}

/** Counters looked at to make room for a new key: bounded, so that a full store costs O(1) per hit. */
const EVICTION_SCAN = 32;

/**
 * The fallback when no REDIS_URL is set (one process, development, tests): the same sliding log
 * as the Lua script, per process. Only admitted hits are recorded, so a refused client is
 * admitted again as soon as its oldest admitted hit is older than the window.
 *
 * Memory is bounded twice: a key holds at most `limit` timestamps, and each policy keeps at most
 * `maxKeysPerPolicy` keys, in a store of its own. A flood of new keys (review R4 finding 2:
 * 100,100 random MFA tokens evicted an exhausted password-reset counter) can therefore only
 * crowd its own policy, and within it a new key makes room by dropping a counter that has
 * expired or is not refusing (fewest hits first, among the least recently used). A counter at
 * its limit is never dropped: when every counter looked at is refusing, the new key is refused
 * too (fail closed) until one of them expires. Filling a policy with refusing counters costs
 * `limit × maxKeysPerPolicy` admitted hits; dropping a counter below its limit forgets fewer
 * than `limit` hits of it, and costs `maxKeysPerPolicy` new keys, each admitted by its own
 * per-address count.
 */
export class MemoryRateLimiter implements RateLimiter {
  private readonly stores = new Map<string, Map<string, number[]>>();

  constructor(private readonly d: MemoryLimiterDeps) {}

  hit(policy: RateLimitPolicy, parts: readonly string[], scale = 1): Promise<RateLimitDecision> {
    const { windowSeconds } = this.d.policies[policy];
    const limit = this.d.policies[policy].limit * scale;
    const key = storageKey(this.d.keyPrefix, policy, parts);
    const now = this.d.clock.now().getTime();
    const windowMs = windowSeconds * 1000;
    // One store per (policy, scale): every counter in a store has the same limit, so "at its
    // limit" means the same thing for all of them when one must make room.
    const store = this.storeOf(scale === 1 ? policy : `${policy}×${scale}`);
    let log = store.get(key);
    // The Map's insertion order doubles as recency: a hit re-inserts its key at the end.
    if (log) store.delete(key);
    else if (store.size >= this.d.maxKeysPerPolicy) {
      const waitMs = makeRoom(store, limit, windowMs, now);
      if (waitMs !== null) return Promise.resolve(decide(limit, false, limit, waitMs));
    }
    log ??= [];
    dropExpired(log, now, windowMs);
    const allowed = log.length < limit;
    if (allowed) log.push(now);
    if (log.length > 0) store.set(key, log);
    const oldest = log[0];
    const resetMs = oldest === undefined ? 0 : oldest + windowMs - now;
    return Promise.resolve(decide(limit, allowed, log.length, resetMs));
  }

  async hitAll(keys: readonly LimitHit[]): Promise<RateLimitDecision[]> {
    const out: RateLimitDecision[] = [];
    for (const k of keys) {
      const d = await this.hit(k.policy, k.parts, k.scale);
      out.push(d);
      if (!d.allowed) break;
    }
    return out;
  }

  close(): Promise<void> {
    this.stores.clear();
    return Promise.resolve();
  }

  /** Keys held for a policy (for tests of the bound). */
  size(policy: RateLimitPolicy): number {
    return this.stores.get(policy)?.size ?? 0;
  }

  private storeOf(policy: string): Map<string, number[]> {
    let store = this.stores.get(policy);
    if (!store) this.stores.set(policy, (store = new Map()));
    return store;
  }
}

/** The window is (now - windowMs, now]: a hit exactly windowMs old no longer counts. */
function dropExpired(log: number[], now: number, windowMs: number): void {
  let expired = 0;
  while (expired < log.length && (log[expired] ?? 0) <= now - windowMs) expired++;
  if (expired > 0) log.splice(0, expired);
}

/**
 * Frees one slot of a full store among its least recently used counters: the one with the fewest
 * hits still in the window (an expired one has none), provided it is below the limit. Returns
 * null when a slot was freed, else how long until the first of the refusing counters looked at
 * frees one. Refusing counters are moved behind the others, so that the next new key looks at
 * different ones.
 */
function makeRoom(store: Map<string, number[]>, limit: number, windowMs: number, now: number): number | null {
  const looked: [string, number[]][] = [];
  for (const entry of store) {
    looked.push(entry);
    if (looked.length >= EVICTION_SCAN) break;
  }
  let victim: string | null = null;
  let fewest = limit;
  let waitMs = windowMs;
  for (const [key, log] of looked) {
    dropExpired(log, now, windowMs);
    if (log.length < fewest) {
      victim = key;
      fewest = log.length;
    } else if (log.length >= limit) {
      waitMs = Math.min(waitMs, (log[0] ?? now) + windowMs - now);
    }
  }
  if (victim !== null) {
    store.delete(victim);
    return null;
  }
  for (const [key, log] of looked) {
    store.delete(key);
    store.set(key, log);
  }
  return waitMs;
}
