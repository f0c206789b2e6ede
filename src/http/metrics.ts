import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AuthCacheStats } from '../db/auth-cache.js';

/** One registry per app instance, so that tests running several apps do not collide. */
export class Metrics {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'palisade_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: 'palisade_http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['method', 'route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly authFailures = new Counter({
    name: 'palisade_auth_failures_total',
    help: 'Refused credentials and authorization denials',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  readonly rateLimitFailOpen = new Counter({
    name: 'palisade_rate_limit_fail_open_total',
    help: 'Rate-limit hits Redis did not answer in time (counted by the per-process backstop instead)',
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'palisade_rate_limited_total',
    help: 'Requests refused by a rate-limit policy',
    labelNames: ['policy'] as const,
    registers: [this.registry],
  });

  /** Uploads refused because no malware scanner gave a verdict (issue 16): alert on any increase. */
  readonly scannerUnavailable = new Counter({
    name: 'palisade_upload_scanner_unavailable_total',
    help: 'Uploads refused because the malware scanner gave no verdict (not configured, connection refused, timeout, error reply, size limit)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor(withDefaults = true) {
    if (withDefaults) collectDefaultMetrics({ register: this.registry, prefix: 'palisade_' });
  }

  /**
   * The authentication cache's counters, read at each scrape (docs/architecture.md, "The
   * authentication cache"): a cache that keeps going off (live 0) or a low hit ratio says its
   * listener or probes are in trouble. Nothing where there is no cache.
   */
  watchAuthCache(stats: () => AuthCacheStats | null): void {
    if (!stats()) return;
    const gauge = (name: string, help: string, read: (s: AuthCacheStats) => number) =>
      new Gauge({ name, help, registers: [this.registry], collect() { const s = stats(); if (s) this.set(read(s)); } });
    gauge('palisade_auth_cache_hits', 'Authentications served from the cache (since start)', (s) => s.hits);
    gauge('palisade_auth_cache_misses', 'Authentications the cache could not serve while live (since start)', (s) => s.misses);
    gauge('palisade_auth_cache_invalidations', 'Tags dropped by a change (since start)', (s) => s.invalidations);
    gauge('palisade_auth_cache_stale', 'Cached results read again: a session\u2019s idle clock too old to decide with (since start)', (s) => s.stale);
    gauge('palisade_auth_cache_entries', 'Authentication results held', (s) => s.size);
    gauge('palisade_auth_cache_live', '1 while the cache is in use (listener in place, last probe back)', (s) => (s.live ? 1 : 0));
  }

  observeRequest(method: string, route: string, status: number, seconds: number): void {
    this.requests.inc({ method, route, status: String(status) });
    this.duration.observe({ method, route }, seconds);
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }
}
