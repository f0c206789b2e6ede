import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { randomToken } from '../../crypto/index.js';
import { ManualClock } from '../../kernel/clock.js';
import { createRateLimiter, type PolicyTable, type RateLimitDecision, type RateLimiter } from './index.js';
import { MemoryRateLimiter } from './memory.js';
import { DEFAULT_POLICIES } from './policies.js';

const REDIS_URL = 'redis://127.0.0.1:6379';
// Semantics, not latency, are checked here (faults.test.ts holds the 50 ms budget): a generous
// budget keeps a loaded CI machine from turning a slow answer into a fail-open and a false count.
const failOpenTimeoutMs = 2000;
const quietLogger = { warn: () => undefined };
const admin = new Redis(REDIS_URL, { lazyConnect: true });
const opened: RateLimiter[] = [];
const prefixes: string[] = [];

function prefix(): string {
  const p = `palisade-test:rl:${randomToken(6)}:`;
  prefixes.push(p);
  return p;
}

type Make = (policies: Partial<PolicyTable>, keyPrefix?: string) => RateLimiter;
const makers: Record<'memory' | 'redis', Make> = {
  memory: (policies, keyPrefix = prefix()) => track(createRateLimiter({ redisUrl: null, policies, keyPrefix, logger: quietLogger })),
  redis: (policies, keyPrefix = prefix()) => track(createRateLimiter({ redisUrl: REDIS_URL, policies, keyPrefix, failOpenTimeoutMs, logger: quietLogger })),
};

function track(l: RateLimiter): RateLimiter {
  opened.push(l);
  return l;
}

async function keysUnder(p: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await admin.scan(cursor, 'MATCH', `${p}*`, 'COUNT', 1000);
    found.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return found;
}

const admitted = (ds: RateLimitDecision[]) => ds.filter((d) => d.allowed).length;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

afterAll(async () => {
  await Promise.all(opened.map((l) => l.close()));
  for (const p of prefixes) {
    const keys = await keysUnder(p);
    if (keys.length) await admin.del(...keys);
  }
  admin.disconnect();
});

describe.each(['memory', 'redis'] as const)('%s limiter: shared semantics', (kind) => {
  const make = makers[kind];

  it('admits exactly `limit`, then refuses with Retry-After >= 1', async () => {
    const l = make({ login: { limit: 5, windowSeconds: 60 } });
    const ds: RateLimitDecision[] = [];
    for (let i = 0; i < 7; i++) ds.push(await l.hit('login', ['ip', '203.0.113.9']));
    expect(ds.map((d) => d.allowed)).toEqual([true, true, true, true, true, false, false]);
    expect(ds.map((d) => d.remaining)).toEqual([4, 3, 2, 1, 0, 0, 0]);
    for (const d of ds.slice(0, 5)) {
      expect(d).toMatchObject({ limit: 5, retryAfterSeconds: 0, failedOpen: false });
      expect(d.resetSeconds).toBeGreaterThanOrEqual(59);
      expect(d.resetSeconds).toBeLessThanOrEqual(60);
    }
    const refused = ds[5]!;
    expect(refused.retryAfterSeconds).toBeGreaterThanOrEqual(1);
    expect(refused.retryAfterSeconds).toBeLessThanOrEqual(60);
    expect(refused.resetSeconds).toBe(refused.retryAfterSeconds);
  });

  // review R5 finding A
  it('a scaled key (an IPv6 /48, an account\u2019s mail) has scale \u00d7 the policy\u2019s limit', async () => {
    const l = make({ 'password-reset': { limit: 2, windowSeconds: 60 } });
    const ds: RateLimitDecision[] = [];
    for (let i = 0; i < 9; i++) ds.push(await l.hit('password-reset', ['ip-allocation', '2001:db8:1::/48'], 4));
    expect(ds.map((d) => d.allowed)).toEqual([true, true, true, true, true, true, true, true, false]);
    expect(ds[0]).toMatchObject({ limit: 8, remaining: 7 });
    expect((await l.hit('password-reset', ['ip', '2001:db8:1:1::/64'])).limit).toBe(2);
  });

  it('admits exactly 50 of 100 concurrent hits, each remaining count once', async () => {
    const l = make({ authenticated: { limit: 50, windowSeconds: 60 } });
    const ds = await Promise.all(Array.from({ length: 100 }, () => l.hit('authenticated', ['key', 'k1'])));
    expect(admitted(ds)).toBe(50);
    expect(ds.some((d) => d.failedOpen)).toBe(false);
    // Atomicity: every admitted hit saw a distinct count (no two read the same value).
    const remaining = ds.filter((d) => d.allowed).map((d) => d.remaining).sort((a, b) => a - b);
    expect(remaining).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });

  it('hitAll counts keys in order and stops at the first refusal: the keys after it are not counted', async () => {
    const l = make({ login: { limit: 1, windowSeconds: 60 }, authenticated: { limit: 5, windowSeconds: 60 } });
    const key = { policy: 'authenticated' as const, parts: ['key', 'k1'] };
    const creator = { policy: 'login' as const, parts: ['key-creator', 'u1'] };
    expect((await l.hitAll([key, creator])).map((d) => [d.allowed, d.remaining, d.limit])).toEqual([[true, 4, 5], [true, 0, 1]]);
    // The creator's budget is spent: the key is counted, the creator refuses, nothing follows.
    expect((await l.hitAll([key, creator])).map((d) => d.allowed)).toEqual([true, false]);
    // Refused first: the key after it is not counted (3 hits so far, this is the 4th).
    expect((await l.hitAll([creator, key])).map((d) => d.allowed)).toEqual([false]);
    expect(await l.hit(key.policy, key.parts)).toMatchObject({ allowed: true, remaining: 2 });
    // A scaled key, and no key at all.
    expect((await l.hitAll([{ policy: 'login', parts: ['ip-allocation', '2001:db8::/48'], scale: 3 }]))[0]).toMatchObject({ limit: 3, remaining: 2 });
    expect(await l.hitAll([])).toEqual([]);
  });

  it('keeps keys, policies and part boundaries independent', async () => {
    const l = make({ login: { limit: 2, windowSeconds: 60 }, register: { limit: 2, windowSeconds: 60 } });
    const burst = async (policy: 'login' | 'register', parts: string[]) => {
      const ds: RateLimitDecision[] = [];
      for (let i = 0; i < 3; i++) ds.push(await l.hit(policy, parts));
      return admitted(ds);
    };
    expect(await burst('login', ['ip', '198.51.100.1'])).toBe(2);
    expect(await burst('login', ['ip', '198.51.100.2'])).toBe(2);
    expect(await burst('register', ['ip', '198.51.100.1'])).toBe(2);
    // An unambiguous join: these two must not share a counter.
    expect(await burst('login', ['a:b', 'c'])).toBe(2);
    expect(await burst('login', ['a', 'b:c'])).toBe(2);
    expect(await burst('login', ['ip', '198.51.100.1', 'account', 'alice@example.com'])).toBe(2);
  });
});

describe('redis limiter', () => {
  it('never over-admits across two instances sharing Redis (distributed)', async () => {
    const p = prefix();
    const a = makers.redis({ authenticated: { limit: 50, windowSeconds: 60 } }, p);
    const b = makers.redis({ authenticated: { limit: 50, windowSeconds: 60 } }, p);
    const ds = await Promise.all(Array.from({ length: 100 }, (_, i) => (i % 2 ? a : b).hit('authenticated', ['key', 'shared'])));
    expect(admitted(ds)).toBe(50);
    expect(ds.some((d) => d.failedOpen)).toBe(false);
  });

  it('stores only hashed keys: no email or IP in Redis', async () => {
    const p = prefix();
    const l = makers.redis({}, p);
    await l.hit('login', ['ip', '203.0.113.77', 'account', 'carol@example.com']);
    await l.hit('mfa-verify', ['account', 'carol@example.com']);
    const keys = await keysUnder(p);
    expect(keys).toHaveLength(2);
    for (const k of keys) {
      expect(k).toMatch(new RegExp(`^${p}(login|mfa-verify):[0-9a-f]{64}$`));
      expect(k).not.toContain('203.0.113.77');
      expect(k).not.toContain('carol');
    }
    // Members are instance nonces, scores are times: the raw parts are nowhere in the values either.
    for (const k of keys) {
      const members = await admin.zrange(k, '0', '-1');
      expect(members.join(' ')).not.toMatch(/carol|203\.0\.113/);
    }
  });

  it('slides: hits leave the window one by one; refused hits do not extend it', async () => {
    const l = makers.redis({ 'password-reset': { limit: 5, windowSeconds: 1 } });
    const hit = () => l.hit('password-reset', ['account', 'dave@example.com']);
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) expect((await hit()).allowed).toBe(true);
    await sleep(500);
    for (let i = 0; i < 2; i++) expect((await hit()).allowed).toBe(true);
    const refused = await hit();
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterSeconds).toBe(1);
    // Hammering while refused writes nothing...
    for (let i = 0; i < 20; i++) expect((await hit()).allowed).toBe(false);
    // ...so once the first three leave (t0 + 1 s), exactly three places are free again.
    await sleep(Math.max(0, 1100 - (performance.now() - t0)));
    const after = [await hit(), await hit(), await hit(), await hit()];
    expect(after.map((d) => d.allowed)).toEqual([true, true, true, false]);
    // Everything gone after a full quiet window.
    await sleep(1050);
    expect((await hit()).remaining).toBe(4);
  });

  it('lets idle keys expire in Redis', async () => {
    const p = prefix();
    const l = makers.redis({ probe: { limit: 3, windowSeconds: 60 } }, p);
    await l.hit('probe', ['ip', '192.0.2.1']);
    const [key] = await keysUnder(p);
    const ttl = await admin.pttl(key!);
    expect(ttl).toBeGreaterThan(59_000);
    expect(ttl).toBeLessThanOrEqual(60_000);
  });
});

describe('memory limiter', () => {
  function memory(policies: Partial<PolicyTable>) {
    const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
    const limiter = createRateLimiter({ redisUrl: null, policies, clock, logger: quietLogger });
    return { clock, limiter };
  }

  it('slides with the injected clock; a hit exactly one window old no longer counts', async () => {
    const { clock, limiter } = memory({ login: { limit: 3, windowSeconds: 60 } });
    const hit = () => limiter.hit('login', ['ip', '203.0.113.9']);
    for (let i = 0; i < 3; i++) {
      expect((await hit()).allowed).toBe(true); // at 0 s, 10 s, 20 s
      clock.advance(10_000);
    }
    const refused = await hit(); // at 30 s: the oldest (0 s) leaves at 60 s
    expect(refused).toMatchObject({ allowed: false, retryAfterSeconds: 30, resetSeconds: 30, remaining: 0 });
    // Hammering while refused does not move the window.
    for (let i = 0; i < 29; i++) {
      clock.advance(1000);
      expect((await hit()).allowed).toBe(false);
    }
    clock.advance(1000); // 60 s
    const back = await hit();
    expect(back).toMatchObject({ allowed: true, remaining: 0, resetSeconds: 10 }); // next to leave: the 10 s hit
    expect((await hit()).allowed).toBe(false);
    clock.advance(60_000);
    expect((await hit()).remaining).toBe(2);
  });

  function bounded(maxKeysPerPolicy: number, policies: Partial<PolicyTable>) {
    const clock = new ManualClock(new Date('2026-01-01T00:00:00Z'));
    const m = new MemoryRateLimiter({ policies: { ...DEFAULT_POLICIES, ...policies }, keyPrefix: 'x:', clock, maxKeysPerPolicy });
    return { clock, m };
  }

  // review R5 finding A
  // In full: counters of another scale live in a store of their own: a refusing /48 counter is
  // never judged by the /64 limit
  it('keeps counters of another scale in a store of their own', async () => {
    const { m } = bounded(3, { 'password-reset': { limit: 2, windowSeconds: 3600 } });
    // Three /48 counters with 2 of their 32 hits would each look "at the limit" to a /64 of limit 2 ...
    for (let i = 0; i < 6; i++) expect((await m.hit('password-reset', ['ip-allocation', `2001:db8:${i % 3}::/48`], 16)).allowed).toBe(true);
    // ... yet the unscaled store is empty, so fresh /64s are admitted.
    for (let i = 0; i < 3; i++) expect((await m.hit('password-reset', ['ip', `198.51.100.${i}`])).allowed).toBe(true);
    expect(m.size('password-reset')).toBe(3);
  });

  // review R4 finding 2
  it('a flood of unique keys never evicts a counter at its limit, and stays in its own policy', async () => {
    const { m } = bounded(100, {
      'password-reset': { limit: 5, windowSeconds: 3600 },
      'mfa-verify': { limit: 10, windowSeconds: 300 },
      login: { limit: 3, windowSeconds: 60 },
    });
    const reset = () => m.hit('password-reset', ['ip', '203.0.113.5']);
    for (let i = 0; i < 5; i++) expect((await reset()).allowed).toBe(true);
    expect((await reset()).allowed).toBe(false);
    const victim = () => m.hit('login', ['account', 'victim@example.test']);
    for (let i = 0; i < 3; i++) await victim();
    expect((await victim()).allowed).toBe(false);

    // The review's attack: unique MFA tokens, ten times the bound. Each is admitted (a first hit),
    // but only its own policy's store fills.
    for (let i = 0; i < 1000; i++) expect((await m.hit('mfa-verify', ['challenge', `pal_mfa_random-${i}`])).allowed).toBe(true);
    expect(m.size('mfa-verify')).toBe(100);
    const stillRefused = await reset();
    expect(stillRefused).toMatchObject({ allowed: false, remaining: 0 });
    expect(stillRefused.retryAfterSeconds).toBeGreaterThan(3500);

    // The same flood inside the victim's own policy: new keys push out each other, not the
    // counter at its limit.
    for (let i = 0; i < 1000; i++) await m.hit('login', ['account', `flood-${i}@example.test`]);
    expect(m.size('login')).toBe(100);
    expect((await victim()).allowed).toBe(false);
    await m.close();
  });

  it('makes room with the counter that forgets least: an expired one, else the fewest hits', async () => {
    const { clock, m } = bounded(3, { login: { limit: 5, windowSeconds: 60 } });
    const hit = (who: string) => m.hit('login', ['ip', who]);
    for (let i = 0; i < 4; i++) await hit('a');
    await hit('b');
    for (let i = 0; i < 2; i++) await hit('c');
    expect((await hit('d')).allowed).toBe(true); // drops b (1 hit), not a (4) nor c (2)
    expect((await hit('a')).remaining).toBe(0); // a kept its 4: this is its 5th
    expect((await hit('c')).remaining).toBe(2);
    expect((await hit('b')).remaining).toBe(4); // b was forgotten (and took d's place: d had 1)
    clock.advance(60_000);
    // Every counter has expired: any of them makes room, nothing counts any more.
    expect((await hit('e')).remaining).toBe(4);
    expect(m.size('login')).toBe(3);
    await m.close();
  });

  // In full: when every counter of a full policy is at its limit, refuses new keys until one
  // expires (fail closed); other policies still admit
  it('fails closed when every counter of a full policy is at its limit; others still admit', async () => {
    const { clock, m } = bounded(5, { login: { limit: 2, windowSeconds: 60 } });
    for (let k = 0; k < 5; k++) {
      for (let i = 0; i < 2; i++) await m.hit('login', ['ip', `full-${k}`]);
      clock.advance(1000);
    }
    const refused = await m.hit('login', ['ip', 'newcomer']);
    expect(refused).toMatchObject({ allowed: false, remaining: 0 });
    // The oldest full counter (hits at 0 s) frees a slot at 60 s; it is now 5 s.
    expect(refused.retryAfterSeconds).toBe(55);
    expect((await m.hit('register', ['ip', 'newcomer'])).allowed).toBe(true);
    for (let k = 0; k < 5; k++) expect((await m.hit('login', ['ip', `full-${k}`])).allowed).toBe(false);
    clock.advance(55_000);
    expect((await m.hit('login', ['ip', 'newcomer'])).allowed).toBe(true);
    expect(m.size('login')).toBe(5);
    await m.close();
  });
});
