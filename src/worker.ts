import type { Config } from './config/index.js';
import { systemClock } from './kernel/clock.js';
import { createLogger } from './logging.js';
import { createServices } from './services.js';
import { openCheckedDatabase } from './startup.js';

/**
 * `palisade worker`: the background jobs a server runs (webhook delivery, audit streams, data keys, tenant exports, audit checkpoints)
 * in a process of their own, from createServices, with no HTTP app and no listener. Runs until
 * SIGINT or SIGTERM; resolves with the exit code.
 */
export async function workUntilSignal(config: Config): Promise<number> {
  // A second process on an embedded data directory would corrupt it: PostgreSQL only.
  if (config.database.kind !== 'postgres') {
    process.stderr.write('palisade worker needs PostgreSQL (DATABASE_URL); on the embedded engine `serve` runs the worker\n');
    return 2;
  }
  const logger = createLogger(config.logLevel);
  // The server migrates; a worker started beside it only checks what it finds.
  const db = await openCheckedDatabase(config, logger, { migrate: false });
  const services = createServices(config, db, systemClock, logger);
  // Graceful: deliveries in flight are recorded before the process exits, so none is sent twice.
  // The handlers go in before the worker starts and before "running" is printed: until a
  // listener exists a signal has its default effect and kills the process mid-delivery.
  let closing: Promise<number> | null = null;
  const stopped = new Promise<number>((resolve) => {
    const shutdown = () => {
      closing ??= services.close().then(() => db.close()).then(
        () => 0,
        (err: unknown) => {
          logger.error({ err }, 'worker shutdown failed');
          return 1;
        },
      );
      void closing.then(resolve);
    };
    // on, not once: repeated signals (npm forwards its own) must not kill the process mid-shutdown.
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, shutdown);
  });
  services.startBackground();
  process.stdout.write('webhook worker running\n');
  return stopped;
}
