import type { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

/**
 * A wake-up from PostgreSQL's NOTIFY, delivered when the notifying transaction commits: what lets
 * a background worker start at once instead of at its next poll. Only a hint: the worker keeps
 * polling, so a dropped listener delays work by one idle interval and loses nothing. `onLost`
 * says the listener is down (it reconnects by itself). `onNotify` gets the notification's payload;
 * it is also called without one each time the listener is (again) in place: whatever was
 * committed while no one listened is unknown then.
 */
export type Listen = (channel: string, onNotify: (payload?: string) => void, onLost?: (err: unknown) => void) => Promise<() => Promise<void>>;

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

/** One dedicated connection per listener on PostgreSQL (LISTEN holds its connection), reconnecting after a drop. */
export function pgListen(url: string, retryMs = 1000): Listen {
  return async (channel, onNotify, onLost) => {
    if (!CHANNEL.test(channel)) throw new Error('bad channel name');
    let closed = false;
    let client: pg.Client | null = null;
    let timer: NodeJS.Timeout | null = null;
    const connect = async (): Promise<void> => {
      if (closed) return;
      // Named, so that an operator (and a test) can tell it from the pool's connections.
      const c = new pg.Client({ connectionString: url, application_name: 'palisade-listen' });
      const lost = (err: unknown) => {
        if (client !== c) return;
        client = null;
        c.removeAllListeners('notification');
        void c.end().catch(() => undefined);
        if (closed) return;
        onLost?.(err);
        timer = setTimeout(() => void connect(), retryMs);
        timer.unref();
      };
      c.on('error', lost);
      c.on('end', () => lost(new Error('listener connection ended')));
      c.on('notification', (n) => {
        if (n.channel === channel) onNotify(n.payload ?? '');
      });
      client = c;
      try {
        await c.connect();
        await c.query(`listen ${channel}`);
        // Whatever was committed while no one listened is picked up by the next pass.
        onNotify();
      } catch (err) {
        lost(err);
      }
    };
    await connect();
    return async () => {
      closed = true;
      if (timer) clearTimeout(timer);
      const c = client;
      client = null;
      if (c) await c.end().catch(() => undefined);
    };
  };
}

/** The embedded engine notifies its own listeners, in process. */
export function pgliteListen(client: PGlite): Listen {
  return async (channel, onNotify) => {
    if (!CHANNEL.test(channel)) throw new Error('bad channel name');
    const unsubscribe = await client.listen(channel, (payload) => onNotify(payload));
    onNotify();
    return async () => {
      await unsubscribe();
    };
  };
}
