import { loadConfig } from '../../src/config/index.js';
import { serve } from '../../src/main.js';

/** The real server, production mode, on the bench database. */
await serve(loadConfig(process.env));
process.stdout.write('ready\n');
// A clean exit on SIGTERM, so that --cpu-prof (bench/profile.ts) writes its profile.
process.once('SIGTERM', () => process.exit(0));
