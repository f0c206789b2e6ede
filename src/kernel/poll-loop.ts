import type { Logger } from 'pino';
import { errorCodeOf } from './errors.js';

/**
 * The one polling loop of the background workers (webhook and mail delivery, audit streams, the
 * data-key job): run a pass, and when it found nothing, sleep until the idle time is over or
 * someone wakes the loop. A pass that throws is logged by its error's code (never the error: a
 * database error's detail can quote the row) and counts as idle. State lives in the database;
 * this only decides when to look.
 */
export interface PollLoop {
  /** Between start() and stop(). */
  readonly running: boolean;
  /** Set by stop() until the pass in flight has ended: a pass claims nothing more and hands back what it has not begun. */
  readonly stopping: boolean;
  start(): void;
  /** Ends the sleep now (new work in this process). */
  wake(): void;
  /** Stops polling and waits for the pass in flight (its transactions commit or roll back whole). */
  stop(): Promise<void>;
  /** Passes until one finds nothing (tests, the CLI); the work done. */
  drain(): Promise<number>;
}

export function createPollLoop(opts: {
  /** Named in the log line of a failed pass. */
  name: string;
  logger: Logger;
  /** One pass: the work it did (0: nothing was due). */
  tick: () => Promise<number>;
  /** The loop's pass, when it does more than `tick` (default: `tick`). */
  pass?: () => Promise<number>;
  /** How long to sleep after an idle pass, asked each time. */
  idleMs: () => number;
}): PollLoop {
  let running = false;
  let stopping = false;
  let loop: Promise<void> | null = null;
  let wake: (() => void) | null = null;
  // A wake that came while a pass ran (it may have looked just before the work committed): the
  // loop looks again at once instead of sleeping through it.
  let woken = false;
  const pass = opts.pass ?? opts.tick;
  return {
    get running() {
      return running;
    },
    get stopping() {
      return stopping;
    },
    start() {
      if (running) return;
      running = true;
      stopping = false;
      loop = (async () => {
        while (running) {
          woken = false;
          const n = await pass().catch((err: unknown) => {
            opts.logger.error({ code: errorCodeOf(err) }, `${opts.name} tick failed`);
            return 0;
          });
          if (n === 0 && running && !woken) {
            await new Promise<void>((resolve) => {
              wake = resolve;
              setTimeout(resolve, opts.idleMs()).unref();
            });
            wake = null;
          }
        }
      })();
    },
    wake() {
      woken = true;
      wake?.();
    },
    async stop() {
      running = false;
      stopping = true;
      wake?.();
      await loop;
      stopping = false;
    },
    async drain() {
      let total = 0;
      for (;;) {
        const n = await opts.tick();
        total += n;
        if (n === 0) return total;
      }
    },
  };
}
