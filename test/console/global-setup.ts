// The browser suites drive the built console: build it once, before any worker starts, when
// web/dist is missing or stale (the same check `npm start` makes).
import { ensureConsole } from '../../scripts/console-build.mjs';

export default function setup(): void {
  ensureConsole({ log: () => undefined });
}
