import type { RotationProgress } from './kek-rotation.js';

/**
 * Progress of a long operator job on stderr: a bar redrawn in place on a terminal, plain lines
 * (at most one per tenth and per second) when stderr is a file or a pipe, as in CI logs.
 */
export function progressReporter(stream: NodeJS.WriteStream, label: string, now: () => number = Date.now): (p: RotationProgress) => void {
  let lastLine = -Infinity;
  let lastTenth = -1;
  return ({ done, total }) => {
    const ratio = total === 0 ? 1 : done / total;
    if (stream.isTTY) {
      const width = 30;
      const filled = Math.round(ratio * width);
      stream.write(`\r${label} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${Math.floor(ratio * 100)}% ${done}/${total}${done >= total ? '\n' : ''}`);
      return;
    }
    const tenth = Math.floor(ratio * 10);
    if (done < total && (tenth === lastTenth || now() - lastLine < 1000)) return;
    lastTenth = tenth;
    lastLine = now();
    stream.write(`${label}: ${done}/${total} (${Math.floor(ratio * 100)}%)\n`);
  };
}
