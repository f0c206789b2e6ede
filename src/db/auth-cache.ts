/**
 * Authentication results (the rows of palisade_session_in_org and palisade_key_in_org) kept in
 * process, so that a signed-in request does not pay a database round trip to learn what it already
 * learnt. Safe only because it is told, not because it expires (issue 15):
 *
 *  - every table those statements read announces each change on the channel `palisade_auth` from
 *    the changing transaction (migration 040): a NOTIFY with a tag (s:<session>, u:<user>,
 *    k:<key>, m:<org>:<user>, o:<org>) that PostgreSQL delivers when that transaction commits,
 *    whoever made it (another instance, the worker, a CLI, psql);
 *  - this process's own changes also arrive as a NOTICE on the changing statement's connection
 *    (open.ts), which drops the cached results at once, and that connection drops them again the
 *    moment its transaction ends (its ReadyForQuery says idle), before COMMIT returns to the code
 *    that committed: a result put meanwhile (the row before the change, right until the commit)
 *    goes, and a read still in flight then is not kept (the generation moved). So the instance
 *    that revoked refuses from its very next request, however long the transaction ran, without
 *    waiting for its own NOTIFY;
 *  - it fails closed: until the listener is in place, and from the moment it is lost until it is
 *    back, the cache is empty and every request reads the database. Coming back, it starts empty
 *    (what was committed while no one listened is unknown);
 *  - a result read while any invalidation arrived is not kept (it may predate that change).
 *
 * The results are row objects, frozen with their arrays; a Date cannot be frozen, so each hit gets
 * its own copies of them: what one request does with its row cannot reach the next one's. Dates
 * in them are evaluated by the callers at each use (expiry, idle time), so a cached row is never
 * "valid for N seconds": it is the row as the database holds it, until the database says otherwise.
 */
export interface AuthCacheStats {
  hits: number;
  misses: number;
  invalidations: number;
  /** Entries found but not used: the caller judged the row too old to decide with, and read it again. */
  stale: number;
  live: boolean;
  size: number;
}

interface Entry {
  row: object;
  tags: readonly string[];
  /** The row's Date columns, copied out on each hit. */
  dates: readonly string[];
  /** When it was put (monotonic, ms): its age, for readers that bound it. */
  at: number;
}

export class AuthCache {
  private readonly entries = new Map<string, Entry>();
  private readonly byTag = new Map<string, Set<string>>();
  private generation = 0;
  private live = false;
  /** Off for good: this process cannot hear its own changes (open.ts). */
  private disabled = false;
  hits = 0;
  misses = 0;
  invalidations = 0;
  stale = 0;

  constructor(private readonly opts: { maxEntries: number } = { maxEntries: 50_000 }) {}

  /**
   * `usable` may refuse an entry, given its age in ms (the caller then reads the database and
   * puts the fresh row): a session's row is kept across its touches, which announce nothing
   * (migration 042), so its idle clock may lag the database's; the reader decides when that lag
   * could matter.
   */
  get(key: string, usable?: (row: object, ageMs: number) => boolean): object | undefined {
    if (!this.live) return undefined;
    const e = this.entries.get(key);
    if (!e) {
      this.misses++;
      return undefined;
    }
    if (usable && !usable(e.row, performance.now() - e.at)) {
      this.stale++;
      return undefined;
    }
    this.hits++;
    if (e.dates.length === 0) return e.row;
    const copy: Record<string, unknown> = { ...e.row };
    for (const k of e.dates) copy[k] = new Date((copy[k] as Date).getTime());
    return Object.freeze(copy);
  }

  /** Taken before the read whose result may be kept: put() keeps it only if nothing changed since. */
  ticket(): number {
    return this.generation;
  }

  put(key: string, row: object, tags: readonly string[], ticket: number): void {
    if (!this.live || ticket !== this.generation) return;
    if (this.entries.size >= this.opts.maxEntries) this.evictOldest();
    this.remove(key);
    // Its own copy: the caller that read it keeps the row it was given.
    const kept: Record<string, unknown> = { ...row };
    const dates = Object.keys(kept).filter((k) => kept[k] instanceof Date);
    for (const k of dates) kept[k] = new Date((kept[k] as Date).getTime());
    this.entries.set(key, { row: deepFreeze(kept), tags, dates, at: performance.now() });
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
      this.live = !this.disabled;
      return;
    }
    this.drop(tag);
  }

  /**
   * This process's own change: told by the changing statement's NOTICE, and again when its
   * transaction ended (committed or rolled back), before the committer goes on (open.ts).
   */
  changing(tag: string): void {
    this.generation++;
    this.drop(tag);
  }

  /** For good: this process could not be told of its own changes, so it must not cache. */
  disable(): void {
    this.disabled = true;
    this.lost();
  }

  /** The listener is gone: nothing cached can be trusted, and nothing is cached until it is back. */
  lost(): void {
    this.generation++;
    this.live = false;
    this.clear();
  }

  stats(): AuthCacheStats {
    return { hits: this.hits, misses: this.misses, invalidations: this.invalidations, stale: this.stale, live: this.live, size: this.entries.size };
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

/** Arrays and nested objects too (a Date's time cannot be frozen: get() copies those). */
function deepFreeze<T extends object>(o: T): T {
  for (const v of Object.values(o)) {
    // A Buffer cannot be frozen either; no authentication row holds one.
    if (v !== null && typeof v === 'object' && !(v instanceof Date) && !ArrayBuffer.isView(v) && !Object.isFrozen(v)) deepFreeze(v as object);
  }
  return Object.freeze(o);
}

export const AUTH_CHANNEL = 'palisade_auth';
const NOTICE_PREFIX = 'palisade_auth ';

/** The tag of a NOTICE raised by migration 040's trigger, or null for any other notice. */
export function authNoticeTag(message: string | undefined): string | null {
  return message?.startsWith(NOTICE_PREFIX) ? message.slice(NOTICE_PREFIX.length) : null;
}
