import { describe, expect, it } from 'vitest';
import { RATE_LIMIT_POLICIES } from '../route.js';
import { DEFAULT_POLICIES, createRateLimiter, rateLimitHeaders } from './index.js';
import { storageKey } from './key.js';
import { OutageLog } from './outage-log.js';

const quiet = { warn: () => undefined };

describe('rate-limit policies, keys and headers', () => {
  it('has a sane default for every declared policy', () => {
    for (const name of RATE_LIMIT_POLICIES) {
      const p = DEFAULT_POLICIES[name];
      expect(Number.isInteger(p.limit) && p.limit >= 1, name).toBe(true);
      expect(p.windowSeconds > 0, name).toBe(true);
    }
    expect(DEFAULT_POLICIES.login).toEqual({ limit: 10, windowSeconds: 60 });
  });

  it('refuses a nonsense policy at construction, not at the first hit', () => {
    expect(() => createRateLimiter({ redisUrl: null, logger: quiet, policies: { login: { limit: 0, windowSeconds: 60 } } })).toThrow(/limit/);
    expect(() => createRateLimiter({ redisUrl: null, logger: quiet, policies: { login: { limit: 1.5, windowSeconds: 60 } } })).toThrow(/limit/);
    expect(() => createRateLimiter({ redisUrl: null, logger: quiet, policies: { probe: { limit: 5, windowSeconds: 0 } } })).toThrow(/window/);
  });

  it('derives keys from a hash of an unambiguous encoding of the parts', () => {
    const k = storageKey('p:', 'login', ['ip', '203.0.113.9', 'account', 'bob@example.com']);
    expect(k).toMatch(/^p:login:[0-9a-f]{64}$/);
    expect(storageKey('p:', 'login', ['a:b', 'c'])).not.toBe(storageKey('p:', 'login', ['a', 'b:c']));
    expect(storageKey('p:', 'login', ['a', 'b'])).not.toBe(storageKey('p:', 'login', ['ab']));
    expect(storageKey('p:', 'login', ['x'])).not.toBe(storageKey('p:', 'register', ['x']));
  });

  it('renders IETF draft headers, Retry-After only when refused, nothing when failed open', () => {
    const base = { limit: 10, resetSeconds: 42, failedOpen: false };
    expect(rateLimitHeaders({ ...base, allowed: true, remaining: 3, retryAfterSeconds: 0 })).toEqual({
      'RateLimit-Limit': '10', 'RateLimit-Remaining': '3', 'RateLimit-Reset': '42',
    });
    expect(rateLimitHeaders({ ...base, allowed: false, remaining: 0, retryAfterSeconds: 42 })).toEqual({
      'RateLimit-Limit': '10', 'RateLimit-Remaining': '0', 'RateLimit-Reset': '42', 'Retry-After': '42',
    });
    expect(rateLimitHeaders({ allowed: true, limit: 10, remaining: 10, resetSeconds: 0, retryAfterSeconds: 0, failedOpen: true })).toEqual({});
  });

  it('logs an outage once per interval and counts what it folded in', () => {
    const lines: { obj: object; msg: string }[] = [];
    let now = 0;
    const log = new OutageLog({ warn: (obj, msg) => lines.push({ obj, msg }) }, 1000, () => now);
    for (let i = 0; i < 5; i++) log.report(new Error('connect ECONNREFUSED'), 'hit');
    expect(lines).toHaveLength(1);
    now = 999;
    log.report(new Error('again'), 'connection');
    expect(lines).toHaveLength(1);
    now = 1000;
    log.report(new Error('still down'), 'hit');
    expect(lines).toHaveLength(2);
    expect(lines[1]!.obj).toMatchObject({ suppressed: 5, source: 'hit', err: { message: 'still down' } });
  });
});
