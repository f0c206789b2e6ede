import { Redis } from 'ioredis';
import { randomToken } from '../../crypto/index.js';
import type { RateLimitPolicy } from '../route.js';
import { decide, failOpenDecision } from './decision.js';
import { storageKey } from './key.js';
import type { OutageLog } from './outage-log.js';
import { SLIDING_WINDOW_LUA } from './sliding-window.js';
import type { PolicyTable, RateLimitDecision, RateLimiter } from './types.js';

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
  palisadeSlidingWindow(key: string, limit: number, windowMicros: number, member: string): Promise<unknown>;
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
      scripts: { palisadeSlidingWindow: { lua: SLIDING_WINDOW_LUA, numberOfKeys: 1 } },
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
    const { windowSeconds } = this.d.policies[policy];
    const limit = this.d.policies[policy].limit * scale;
    const key = storageKey(this.d.keyPrefix, policy, parts);
    const member = `${this.nonce}:${(this.seq = (this.seq + 1) % Number.MAX_SAFE_INTEGER)}`;
    const attempt = { abandoned: false };
    try {
      const reply = await withDeadline(this.run(key, limit, Math.round(windowSeconds * 1e6), member, attempt), this.d.failOpenTimeoutMs);
      const [allowed, count, resetMicros] = parseReply(reply);
      return decide(limit, allowed === 1, count, resetMicros / 1000);
    } catch (err) {
      attempt.abandoned = true;
      this.d.outages.report(err, 'hit');
      try {
        this.d.onFailOpen();
      } catch {
        // A failing metrics callback must not turn a fail-open into a 500.
      }
      return failOpenDecision(limit);
    }
  }

  async close(): Promise<void> {
    if (this.redis.status === 'ready') {
      await withDeadline(this.redis.quit(), 1000).catch(() => undefined);
    }
    this.redis.disconnect();
  }

  private async run(key: string, limit: number, windowMicros: number, member: string, attempt: { abandoned: boolean }): Promise<unknown> {
    if (!this.connectionSettled) {
      await this.firstConnection;
      // The caller already failed open: counting this hit now would charge a hit that was not decided here.
      if (attempt.abandoned) throw new Error('abandoned while connecting');
    }
    return this.redis.palisadeSlidingWindow(key, limit, windowMicros, member);
  }
}

function parseReply(reply: unknown): [number, number, number] {
  if (Array.isArray(reply) && reply.length === 3 && reply.every((n) => typeof n === 'number')) {
    return reply as [number, number, number];
  }
  throw new Error('unexpected reply from the rate-limit script');
}

/** Rejects after `ms`; Promise.race also marks a late rejection of `p` as handled. */
function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Redis did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
