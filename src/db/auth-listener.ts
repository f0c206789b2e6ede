import { randomToken } from '../crypto/index.js';
import { AUTH_CHANNEL, type AuthCache } from './auth-cache.js';
import type { Listen } from './listen.js';

const PROBE = 'probe:';

export interface AuthListenerOptions {
  cache: AuthCache;
  listen: Listen;
  /** Sends NOTIFY palisade_auth with this payload over the ordinary pool (it must come back on the listener). */
  notify: (payload: string) => Promise<void>;
  /** How often the path is proven (ms). */
  probeEveryMs?: number;
  /** A probe not back by then: the path is not trusted (ms). */
  probeTimeoutMs?: number;
}

/**
 * Feeds the authentication cache from its listener, and turns it on only while the path from a
 * commit to this listener is proven to work: a LISTEN that succeeded is not enough (through a
 * transaction-mode pooler, or a connection that stalls without an error, it may never hear a
 * thing). The process sends itself a NOTIFY (`probe:<nonce>`) over its pool when the listener is
 * in place and then every `probeEveryMs`; the cache goes live when one comes back, and is emptied
 * and bypassed when one is not back within `probeTimeoutMs`. Notifications on one connection
 * arrive in commit order, so when a probe is back, every change committed before it was sent
 * has been heard.
 */
/** How long a probe may take to commit (queued behind requests for a pool connection). */
const PROBE_COMMIT_MS = 10_000;

export async function startAuthListener(opts: AuthListenerOptions): Promise<() => Promise<void>> {
  const { cache } = opts;
  const every = opts.probeEveryMs ?? 1_000;
  const timeout = opts.probeTimeoutMs ?? 1_000;
  let inPlace = false;
  let awaited: string | null = null;
  /** When the latest probe was asked for, and when its NOTIFY committed (0: not yet). */
  let sentAt = 0;
  let committedAt = 0;
  let stopped = false;

  const probe = () => {
    if (stopped || !inPlace) return;
    const nonce = `${PROBE}${randomToken(12)}`;
    awaited = nonce;
    sentAt = Date.now();
    committedAt = 0;
    opts.notify(nonce).then(
      () => {
        if (awaited === nonce) committedAt = Date.now();
      },
      () => {
        // The database is not reachable from the pool: nothing cached can be confirmed.
        if (awaited === nonce) cache.lost();
      },
    );
  };

  const stop = await opts.listen(
    AUTH_CHANNEL,
    (payload) => {
      if (payload === undefined) {
        // The LISTEN is in place (again): what was committed meanwhile is unknown, and the path
        // is proven only by a probe coming back.
        cache.lost();
        inPlace = true;
        probe();
        return;
      }
      if (payload.startsWith(PROBE)) {
        // Another instance's probe says nothing about this one's path.
        if (payload !== awaited) return;
        awaited = null;
        if (!cache.stats().live) cache.changed();
        return;
      }
      cache.changed(payload);
    },
    () => {
      inPlace = false;
      awaited = null;
      cache.lost();
    },
  );

  const timer = setInterval(() => {
    const now = Date.now();
    // The timeout runs from the probe's commit: a pool queueing behind a burst of requests delays
    // the probe, not the listener, and must not turn the cache off when it is needed most (it
    // did, and the load it then put on the database fed the queue). A probe that cannot even
    // commit in PROBE_COMMIT_MS is a database in trouble: off as well.
    const late = committedAt > 0 ? now - committedAt > timeout : now - sentAt > PROBE_COMMIT_MS;
    if (awaited !== null && late) {
      awaited = null;
      cache.lost();
    }
    if (awaited === null && now - sentAt >= every) probe();
  }, Math.max(10, Math.min(every, timeout) / 2));
  timer.unref();

  return async () => {
    stopped = true;
    clearInterval(timer);
    cache.lost();
    await stop();
  };
}
