import { performance } from 'node:perf_hooks';

export type WarnLogger = { warn(obj: object, msg: string): void };

/**
 * While Redis is down every request fails open and ioredis emits an error per reconnect
 * attempt; logging each would flood the log exactly when operators read it. One line per
 * interval, carrying how many were folded into it, says the same thing.
 * Only the error's class and message are logged: never the URL (it may hold a password).
 */
export class OutageLog {
  private lastAt = Number.NEGATIVE_INFINITY;
  private suppressed = 0;

  constructor(
    private readonly logger: WarnLogger,
    private readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  report(err: unknown, source: 'hit' | 'connection'): void {
    const t = this.now();
    if (t - this.lastAt < this.intervalMs) {
      this.suppressed++;
      return;
    }
    const e = err instanceof Error ? err : new Error(String(err));
    this.logger.warn(
      { err: { type: e.name, message: e.message }, source, suppressed: this.suppressed, intervalMs: this.intervalMs },
      'rate limiter: Redis unreachable or too slow, failing open (login stays protected by the account lockout)',
    );
    this.lastAt = t;
    this.suppressed = 0;
  }
}
