import { describe, expect, it } from 'vitest';
import { AuthCache, authNoticeTag } from './auth-cache.js';

const row = (n: number) => ({ n });

function liveCache(now = { t: 0 }) {
  const c = new AuthCache({ maxEntries: 3, localHoldMs: 2000, now: () => now.t });
  c.changed();
  return { c, now };
}

describe('AuthCache', () => {
  it('keeps nothing until its listener reports in place, and nothing after it is lost', () => {
    const c = new AuthCache({ maxEntries: 10, localHoldMs: 2000 });
    c.put('a', row(1), ['s:1'], c.ticket());
    expect(c.get('a')).toBeUndefined();
    c.changed();
    c.put('a', row(1), ['s:1'], c.ticket());
    expect(c.get('a')).toEqual(row(1));
    c.lost();
    expect(c.get('a')).toBeUndefined();
    c.put('a', row(1), ['s:1'], c.ticket());
    expect(c.stats()).toMatchObject({ live: false, size: 0 });
    // Back in place: empty, since what changed meanwhile is unknown.
    c.changed();
    expect(c.get('a')).toBeUndefined();
  });

  it('drops every result that depended on a changed tag, and only those', () => {
    const { c } = liveCache();
    c.put('a', row(1), ['s:1', 'u:1', 'o:x'], c.ticket());
    c.put('b', row(2), ['s:2', 'u:1', 'o:x'], c.ticket());
    c.put('c', row(3), ['s:3', 'u:3', 'o:y'], c.ticket());
    c.changed('u:1');
    expect([c.get('a'), c.get('b'), c.get('c')]).toEqual([undefined, undefined, row(3)]);
    c.changed('o:y');
    expect(c.get('c')).toBeUndefined();
  });

  it('does not keep a result read while any change was announced (it may predate the change)', () => {
    const { c } = liveCache();
    const ticket = c.ticket();
    c.changed('s:9');
    c.put('a', row(1), ['s:1'], ticket);
    expect(c.get('a')).toBeUndefined();
  });

  it('holds a tag this process changed until its NOTIFY is back, or for at most localHoldMs', () => {
    const { c, now } = liveCache();
    c.put('a', row(1), ['s:1'], c.ticket());
    c.changing('s:1');
    expect(c.get('a')).toBeUndefined();
    c.put('a', row(1), ['s:1'], c.ticket());
    expect(c.get('a')).toBeUndefined();
    c.changed('s:1');
    c.put('a', row(2), ['s:1'], c.ticket());
    expect(c.get('a')).toEqual(row(2));
    // A change rolled back sends no NOTIFY: the hold ends by itself.
    c.changing('s:1');
    now.t += 2001;
    c.put('a', row(3), ['s:1'], c.ticket());
    expect(c.get('a')).toEqual(row(3));
  });

  it('evicts the oldest result past its size, and freezes what it keeps', () => {
    const { c } = liveCache();
    for (const k of ['a', 'b', 'c', 'd']) c.put(k, row(1), [`s:${k}`], c.ticket());
    expect(c.get('a')).toBeUndefined();
    expect(c.stats().size).toBe(3);
    expect(Object.isFrozen(c.get('d'))).toBe(true);
  });

  it('reads only its own trigger\u2019s notices', () => {
    expect(authNoticeTag('palisade_auth s:1')).toBe('s:1');
    expect(authNoticeTag('relation "x" already exists, skipping')).toBeNull();
    expect(authNoticeTag(undefined)).toBeNull();
  });
});
