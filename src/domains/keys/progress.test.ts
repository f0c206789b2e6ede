import { describe, expect, it } from 'vitest';
import { progressReporter } from './progress.js';

function stream(isTTY: boolean): NodeJS.WriteStream & { text: string } {
  const s = { isTTY, text: '', write(chunk: string) { s.text += chunk; return true; } };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

describe('rotate-kek progress on stderr', () => {
  it('redraws one bar in place on a terminal, ending the line when done', () => {
    const tty = stream(true);
    const report = progressReporter(tty, 'rewrapping data keys');
    for (const done of [0, 50, 100]) report({ done, total: 100 });
    expect(tty.text).toBe(
      `\rrewrapping data keys [${'-'.repeat(30)}] 0% 0/100` +
        `\rrewrapping data keys [${'#'.repeat(15)}${'-'.repeat(15)}] 50% 50/100` +
        `\rrewrapping data keys [${'#'.repeat(30)}] 100% 100/100\n`,
    );
  });

  it('writes plain lines to a pipe or file: at most one per tenth and per second, and always the last', () => {
    const log = stream(false);
    let t = 0;
    const report = progressReporter(log, 'rewrapping data keys', () => t);
    report({ done: 0, total: 1000 });
    for (let done = 1; done < 1000; done++) {
      t += 5;
      report({ done, total: 1000 });
    }
    report({ done: 1000, total: 1000 });
    const lines = log.text.trimEnd().split('\n');
    expect(lines[0]).toBe('rewrapping data keys: 0/1000 (0%)');
    expect(lines.at(-1)).toBe('rewrapping data keys: 1000/1000 (100%)');
    expect(lines.length).toBeLessThanOrEqual(12);
    expect(lines.length).toBeGreaterThan(3);
  });
});
