/**
 * Authentication results (the rows of palisade_session_in_org and palisade_key_in_org) kept in
 * process, so that a signed-in request does not pay a database round trip to learn what it already
 * learnt. Safe only because it is told, not because it expires (issue 15):
 *
 *  - every table those statements read announces each change on the channel `palisade_auth` from
 *    the changing transaction (migration 040): a NOTIFY with a tag (s:<session>, u:<user>,
 *    k:<key>, m:<org>:<user>, o:<org>) that PostgreSQL delivers when that transaction commits,
 *    whoever made it (another instance, the worker, a CLI, psql);
 *  - this process's own changes also arrive as a NOTICE on the changing statement's connection,
 *    before its COMMIT returns: the cached results go at once, and the tag is not cached again
 *    until its NOTIFY has come back (at most `localHoldMs`: a rolled-back change sends none), so
 *    that a read whose snapshot predates the commit cannot put the old row back meanwhile;
 *  - it fails closed: until the listener is in place, and from the moment it is lost until it is
 *    back, the cache is empty and every request reads the database. Coming back, it starts empty
 *    (what was committed while no one listened is unknown);
 *  - a result read while any invalidation arrived is not kept (it may predate that change).
 *
 * The results are row objects, frozen: callers derive from them and never change them. Dates in
 * them are evaluated by the callers at each use (expiry, idle time), so a cached row is never
 * "valid for N seconds": it is the row as the database holds it, until the database says otherwise.
 */
export interface AuthCacheStats {
  hits: number;
  misses: number;
  invalidations: number;
  live: boolean;
  size: number;
}

interface Entry {
  row: object;
  tags: readonly string[];
}

export class AuthCache {
  private readonly entries = new Map<string, Entry>();
  private readonly byTag = new Map<string, Set<string>>();
  /** Tags this process changed recently: not cached until then (ms since epoch). */
  private readonly held = new Map<string, number>();
  private generation = 0;
  private live = false;
  hits = 0;
  misses = 0;
  invalidations = 0;

  constructor(
    private readonly opts: { maxEntries: number; localHoldMs: number; now?: () => number } = { maxEntries: 50_000, localHoldMs: 2_000 },
  ) {}

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }

  get(key: string): object | undefined {
    if (!this.live) return undefined;
    const e = this.entries.get(key);
    if (!e) {
      this.misses++;
      return undefined;
    }
    this.hits++;
    return e.row;
  }

  /** Taken before the read whose result may be kept: put() keeps it only if nothing changed since. */
  ticket(): number {
    return this.generation;
  }

  put(key: string, row: object, tags: readonly string[], ticket: number): void {
    if (!this.live || ticket !== this.generation) return;
    if (this.held.size > 0) {
      const now = this.now();
      for (const tag of tags) {
        const until = this.held.get(tag);
        if (until === undefined) continue;
        if (until > now) return;
        this.held.delete(tag);
      }
    }
    if (this.entries.size >= this.opts.maxEntries) this.evictOldest();
    this.remove(key);
    this.entries.set(key, { row: Object.freeze(row), tags });
    for (const tag of tags) {
      let keys = this.byTag.get(tag);
      if (!keys) this.byTag.set(tag, (keys = new Set()));
      keys.add(key);
    }
  }

  /** A NOTIFY of a committed change; no tag: the listener is (back) in place and anything may have changed. */
  changed(tag?: string): void {
    this.generation++;
    if (tag === undefined) {
      this.clear();
      // Holds waited for NOTIFYs that may have been sent before anyone listened.
      this.held.clear();
      this.live = true;
      return;
    }
    this.drop(tag);
    // Its NOTIFY is back: a read from now on sees the committed change. (Two transactions of this
    // process changing one tag at once: the first one's NOTIFY ends the hold, and until the
    // second one's arrives a read may keep the row between them; its NOTIFY drops it, as
    // another instance's would.)
    this.held.delete(tag);
  }

  /** A NOTICE from this process's own statement: dropped now, and held off until its NOTIFY is surely back. */
  changing(tag: string): void {
    this.generation++;
    this.drop(tag);
    if (this.held.size > 10_000) this.held.clear();
    this.held.set(tag, this.now() + this.opts.localHoldMs);
  }

  /** The listener is gone: nothing cached can be trusted, and nothing is cached until it is back. */
  lost(): void {
    this.generation++;
    this.live = false;
    this.clear();
  }

  stats(): AuthCacheStats {
    return { hits: this.hits, misses: this.misses, invalidations: this.invalidations, live: this.live, size: this.entries.size };
  }

  private drop(tag: string): void {
    this.invalidations++;
    const keys = this.byTag.get(tag);
    if (!keys) return;
    for (const key of [...keys]) this.remove(key);
  }

  private remove(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    for (const tag of e.tags) {
      const keys = this.byTag.get(tag);
      keys?.delete(key);
      if (keys?.size === 0) this.byTag.delete(tag);
    }
  }

  private evictOldest(): void {
    // A Map iterates in insertion order: the first key is the oldest entry.
    const first = this.entries.keys().next();
    if (!first.done) this.remove(first.value);
  }

  private clear(): void {
    this.entries.clear();
    this.byTag.clear();
  }
}

export const AUTH_CHANNEL = 'palisade_auth';
const NOTICE_PREFIX = 'palisade_auth ';

/** The tag of a NOTICE raised by migration 040's trigger, or null for any other notice. */
export function authNoticeTag(message: string | undefined): string | null {
  return message?.startsWith(NOTICE_PREFIX) ? message.slice(NOTICE_PREFIX.length) : null;
}
