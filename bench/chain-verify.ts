import { runMain } from './lib/env.js';
import { chainVerification } from './lib/micro.js';

/** npm run bench:chain-verify — `audit verify`'s walk over a chain of BENCH_AUDIT_EVENTS events (built once), alone. */
runMain(async () => {
  const r = await chainVerification((s) => process.stdout.write(`${s}\n`));
  process.stdout.write(`audit chain verification: ${r.events} events at ${Math.round(r.perSecond)} events/s, ${r.ok ? 'intact' : 'BROKEN'}\n`);
});
