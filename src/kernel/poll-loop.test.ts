import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../logging.js';
import { createPollLoop } from './poll-loop.js';

function logSink(): { lines: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { lines.push(chunk.toString()); cb(); } });
  return { lines, logger: createLogger('info', sink) };
}

describe('the workers\u2019 poll loop', () => {
  it('sleeps after an idle pass until woken, logs a failed pass by its code only, and stop waits for the pass in flight', async () => {
    const { lines, logger } = logSink();
    let passes = 0;
    let fail = false;
    let inPass: (() => void) | null = null;
    const loop = createPollLoop({
      name: 'test worker', logger, idleMs: () => 60_000,
      tick: async () => {
        passes++;
        if (fail) {
          fail = false;
          throw Object.assign(new Error('duplicate key value violates unique constraint: secret@example.com'), { code: '23505' });
        }
        if (inPass) {
          await new Promise<void>((resolve) => { const go = inPass; inPass = null; go?.(); setTimeout(resolve, 50); });
        }
        return 0;
      },
    });
    loop.start();
    await new Promise((r) => setTimeout(r, 20));
    expect(passes).toBe(1);
    // Asleep for a minute: woken, it runs a pass at once.
    fail = true;
    loop.wake();
    await new Promise((r) => setTimeout(r, 20));
    expect(passes).toBe(2);
    expect(lines.join('')).toContain('"code":"23505"');
    expect(lines.join('')).not.toContain('secret@example.com');
    // stop() during a pass returns after it, and nothing runs afterwards.
    const entered = new Promise<void>((resolve) => { inPass = resolve; });
    loop.wake();
    await entered;
    expect(loop.running).toBe(true);
    const stopped = loop.stop();
    expect(loop.stopping).toBe(true);
    await stopped;
    expect(loop.stopping).toBe(false);
    const after = passes;
    await new Promise((r) => setTimeout(r, 30));
    expect(passes).toBe(after);
  });

  it('drains: passes until one finds nothing', async () => {
    const { logger } = logSink();
    const work = [3, 2, 0];
    const loop = createPollLoop({ name: 'drain', logger, idleMs: () => 10, tick: () => Promise.resolve(work.shift() ?? 0) });
    expect(await loop.drain()).toBe(5);
  });
});
