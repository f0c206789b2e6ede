import { describe, expect, it, vi } from 'vitest';
import { AuthCache, authNoticeTag } from './auth-cache.js';

const row = (n: number) => ({ n });

function liveCache() {
  const c = new AuthCache({ maxEntries: 3 });
  c.changed();
  return { c };
}

describe('AuthCache', () => {
  it('keeps nothing until its listener reports in place, and nothing after it is lost', () => {
    const c = new AuthCache({ maxEntries: 10 });
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

  it('drops a tag this process changes at its NOTICE and again at its transaction\u2019s end: a read in flight across either is not kept', () => {
    const { c } = liveCache();
    c.put('a', row(1), ['s:1'], c.ticket());
    const inFlight = c.ticket();
    c.changing('s:1'); // the NOTICE
    expect(c.get('a')).toBeUndefined();
    c.put('a', row(1), ['s:1'], inFlight);
    expect(c.get('a')).toBeUndefined();
    // Until the commit the old row is the database's answer, and may be kept...
    const beforeCommit = c.ticket();
    c.put('a', row(1), ['s:1'], beforeCommit);
    expect(c.get('a')).toEqual(row(1));
    const acrossCommit = c.ticket();
    c.changing('s:1'); // ReadyForQuery idle: committed
    // ...and goes with it, with a read that started before it.
    expect(c.get('a')).toBeUndefined();
    c.put('a', row(1), ['s:1'], acrossCommit);
    expect(c.get('a')).toBeUndefined();
    c.put('a', row(2), ['s:1'], c.ticket());
    expect(c.get('a')).toEqual(row(2));
  });

  it('gives no request a way to change what the next one is served: arrays frozen, dates copied', () => {
    const { c } = liveCache();
    const read = { project_ids: ['p1'], last_seen_at: new Date(1000), custom: { perms: ['a'] } };
    c.put('a', read, ['s:1'], c.ticket());
    // The caller that read the row changes its own Date: the kept one is another.
    read.last_seen_at.setTime(5);
    const first = c.get('a') as typeof read;
    expect(first.last_seen_at.getTime()).toBe(1000);
    expect(() => first.project_ids.push('p2')).toThrow(TypeError);
    expect(() => first.custom.perms.push('b')).toThrow(TypeError);
    first.last_seen_at.setTime(0);
    const second = c.get('a') as typeof read;
    expect(second.last_seen_at.getTime()).toBe(1000);
    expect(second.project_ids).toEqual(['p1']);
  });

  it('serves an entry only while its reader accepts it, given the entry\u2019s age on a monotonic clock', () => {
    const { c } = liveCache();
    let t = 1_000;
    const now = vi.spyOn(performance, 'now').mockImplementation(() => t);
    try {
      c.put('a', row(1), ['s:1'], c.ticket());
      const ages: number[] = [];
      const young = (_r: object, ageMs: number) => (ages.push(ageMs), ageMs < 500);
      t += 499;
      expect(c.get('a', young)).toEqual(row(1));
      t += 1;
      expect(c.get('a', young)).toBeUndefined();
      expect(ages).toEqual([499, 500]);
      expect(c.stats()).toMatchObject({ hits: 1, stale: 1 });
      // Refused is not dropped: the reader's fresh row replaces it, younger.
      c.put('a', row(2), ['s:1'], c.ticket());
      expect(c.get('a', young)).toEqual(row(2));
    } finally {
      now.mockRestore();
    }
  });

  it('once disabled, never goes live again', () => {
    const { c } = liveCache();
    c.disable();
    c.changed();
    c.put('a', row(1), ['s:1'], c.ticket());
    expect(c.get('a')).toBeUndefined();
    expect(c.stats().live).toBe(false);
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
