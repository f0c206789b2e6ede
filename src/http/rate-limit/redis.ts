import { Redis } from 'ioredis';
import { randomToken } from '../../crypto/index.js';
import type { RateLimitPolicy } from '../route.js';
import { decide, failOpenDecision } from './decision.js';
import { storageKey } from './key.js';
import type { OutageLog } from './outage-log.js';
import { SLIDING_WINDOW_LUA } from './sliding-window.js';
import type { LimitHit, PolicyTable, RateLimitDecision, RateLimiter } from './types.js';

export interface RedisLimiterDeps {
  redisUrl: string;
  policies: PolicyTable;
  keyPrefix: string;
  failOpenTimeoutMs: number;
  outages: OutageLog;
  onFailOpen: () => void;
}

/** The script registered through ioredis (EVALSHA, falling back to EVAL after NOSCRIPT, e.g. a restarted server). */
type ScriptClient = Redis & {
  /** numkeys, the keys, then the member and (limit, window µs) per key: see sliding-window.ts. */
  palisadeSlidingWindow(numKeys: number, ...args: (string | number)[]): Promise<unknown>;
};

/**
 * Sliding-window limiter over Redis (see sliding-window.ts for the algorithm).
 *
 * Failing open: principle 1 names this limiter as the one place allowed to fail open, because
 * login stays protected by the DB-backed lockout. A hit never waits more than failOpenTimeoutMs:
 * - while disconnected, ioredis refuses at once (no offline queue) instead of queueing;
 * - a command on a connection that died or hangs is cut by our own deadline (one timer per hit;
 *   ioredis' commandTimeout would add a second one for the same job);
 * - a silent socket (stopped server) is destroyed after socketTimeout, which puts the client back
 *   in the disconnected state where refusal is immediate; reconnection is retried every <= 1 s,
 *   so counting resumes by itself within about a second of Redis coming back.
 * A hit that timed out was allowed (failed open) yet may still be counted by Redis: the count errs
 * high, so later hits are refused sooner, never admitted more.
 * Known limit: the deadline also expires when this process is too busy to read the answers (a
 * burst of ~1,000 simultaneous hits on a 2-core machine, see bench/ratelimit.ts), so overload
 * fails open like an outage does.
 */
export class RedisRateLimiter implements RateLimiter {
  private readonly redis: ScriptClient;
  /** Settles on the first connection outcome; hits before it wait (within the deadline) instead of failing open at start-up. */
  private readonly firstConnection: Promise<void>;
  private connectionSettled = false;
  private readonly nonce = randomToken(9);
  private seq = 0;

  constructor(private readonly d: RedisLimiterDeps) {
    this.redis = new Redis(d.redisUrl, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      socketTimeout: Math.max(1000, d.failOpenTimeoutMs * 20),
      connectTimeout: 2000,
      retryStrategy: (times: number) => Math.min(50 * 2 ** times, 1000),
      // No numberOfKeys: a call passes its own count (one to three counters).
      scripts: { palisadeSlidingWindow: { lua: SLIDING_WINDOW_LUA } },
    }) as ScriptClient;
    // Without an 'error' listener ioredis reports each failed reconnect on stderr; with one, the
    // process never sees an unhandled connection error and the log stays at one line per interval.
    this.redis.on('error', (err: unknown) => d.outages.report(err, 'connection'));
    this.firstConnection = new Promise<void>((resolve) => {
      const settle = (): void => {
        this.connectionSettled = true;
        resolve();
      };
      this.redis.once('ready', settle);
      this.redis.once('close', settle);
      this.redis.once('error', settle);
    });
  }

  async hit(policy: RateLimitPolicy, parts: readonly string[], scale = 1): Promise<RateLimitDecision> {
    const [d] = await this.hitAll([{ policy, parts, scale }]);
    if (!d) throw new Error('a hit without a decision');
    return d;
  }

  async hitAll(keys: readonly LimitHit[]): Promise<RateLimitDecision[]> {
    const counters = keys.map(({ policy, parts, scale = 1 }) => ({
      key: storageKey(this.d.keyPrefix, policy, parts),
      limit: this.d.policies[policy].limit * scale,
      windowMicros: Math.round(this.d.policies[policy].windowSeconds * 1e6),
    }));
    if (counters.length === 0) return [];
    const member = `${this.nonce}:${(this.seq = (this.seq + 1) % Number.MAX_SAFE_INTEGER)}`;
    const args: (string | number)[] = [...counters.map((c) => c.key), member];
    for (const c of counters) args.push(c.limit, c.windowMicros);
    const attempt = { abandoned: false };
    try {
      const reply = await withDeadline(this.run(counters.length, args, attempt), this.d.failOpenTimeoutMs);
      return parseReply(reply, counters.length).map(([allowed, count, resetMicros], i) =>
        decide(counters[i]?.limit ?? 0, allowed === 1, count, resetMicros / 1000),
      );
    } catch (err) {
      attempt.abandoned = true;
      this.d.outages.report(err, 'hit');
      try {
        this.d.onFailOpen();
      } catch {
        // A failing metrics callback must not turn a fail-open into a 500.
      }
      return counters.map((c) => failOpenDecision(c.limit));
    }
  }

  async close(): Promise<void> {
    if (this.redis.status === 'ready') {
      await withDeadline(this.redis.quit(), 1000).catch(() => undefined);
    }
    this.redis.disconnect();
  }

  private async run(numKeys: number, args: (string | number)[], attempt: { abandoned: boolean }): Promise<unknown> {
    if (!this.connectionSettled) {
      await this.firstConnection;
      // The caller already failed open: counting this hit now would charge a hit that was not decided here.
      if (attempt.abandoned) throw new Error('abandoned while connecting');
    }
    return this.redis.palisadeSlidingWindow(numKeys, ...args);
  }
}

/** Three numbers per counter taken: every counter up to and including the first refusal. */
function parseReply(reply: unknown, counters: number): [number, number, number][] {
  if (!Array.isArray(reply) || reply.length === 0 || reply.length % 3 !== 0 || reply.length > counters * 3 || !reply.every((n) => typeof n === 'number')) {
    throw new Error('unexpected reply from the rate-limit script');
  }
  const nums = reply as number[];
  const out: [number, number, number][] = [];
  for (let i = 0; i < nums.length; i += 3) out.push([nums[i] ?? 0, nums[i + 1] ?? 0, nums[i + 2] ?? 0]);
  // Short only when the last counter taken refused.
  if (out.length < counters && out[out.length - 1]?.[0] !== 0) throw new Error('unexpected reply from the rate-limit script');
  return out;
}

/** Rejects after `ms`; Promise.race also marks a late rejection of `p` as handled. */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
