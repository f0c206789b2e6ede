import type { RateLimitPolicy } from '../route.js';

export interface PolicyLimit {
  limit: number;
  windowSeconds: number;
}

export type PolicyTable = Record<RateLimitPolicy, PolicyLimit>;

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  /** Hits still admissible in the current window, after this hit. */
  remaining: number;
  /**
   * Seconds until the window has room again: until the oldest counted hit leaves it, which is
   * when `remaining` next goes up by at least one (not until the whole window is empty). Equal to
   * `retryAfterSeconds` when refused. 0 only when nothing is counted (fail-open decisions).
   */
  resetSeconds: number;
  /** 0 when allowed, >= 1 when refused. */
  retryAfterSeconds: number;
  /** True when Redis was unreachable and the hit was allowed without being counted. */
  failedOpen: boolean;
}

/** One counter of a hitAll call. */
export interface LimitHit {
  policy: RateLimitPolicy;
  parts: readonly string[];
  scale?: number;
}

export interface RateLimiter {
  /** Counts one hit for `policy` under the key made of `parts` (e.g. ['ip', '203.0.113.9'] or ['ip', ip, 'account', email]). */
  /**
   * `scale` (default 1) multiplies the policy's limit for this key: a key shared by many clients
   * (an IPv6 /48, every address asking mail for one account) is counted with a wider budget.
   * Callers use a fixed handful of scales; the memory store keeps one bounded store per scale.
   */
  hit(policy: RateLimitPolicy, parts: readonly string[], scale?: number): Promise<RateLimitDecision>;
  /**
   * Counts each key in turn and stops at the first refused one (the keys after it are not
   * counted): the decisions of the keys counted, in order. On Redis, one call for all of them
   * (an API key counts itself and its creator on every request).
   */
  hitAll(keys: readonly LimitHit[]): Promise<RateLimitDecision[]>;
  close(): Promise<void>;
}

export interface RateLimiterOptions {
  redisUrl: string | null;
  policies?: Partial<PolicyTable>;
  /** Default 'palisade:rl:'; tests use a unique prefix. */
  keyPrefix?: string;
  /** Default 50: a hit never waits longer than this for Redis. */
  failOpenTimeoutMs?: number;
  logger: { warn(obj: object, msg: string): void };
  /** Called on every fail-open hit (wired to a metrics counter by the pipeline). */
  onFailOpen?: () => void;
  /** Memory implementation only: Redis uses its own TIME so that every instance shares one clock. */
  clock?: { now(): Date };
  /** Default 60000: "Redis unreachable" is logged at most once per interval. */
  logIntervalMs?: number;
  /**
   * Memory implementation (and the Redis fail-open backstop), default 50000: counters kept per
   * policy; a full policy makes room only by dropping an expired or non-refusing counter, else
   * refuses the new key (see memory.ts).
   */
  maxMemoryKeysPerPolicy?: number;
}
