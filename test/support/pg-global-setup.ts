// One PostgreSQL template per test run (pg-template.ts): named here, before any worker starts (the
// workers inherit the environment), and dropped when the run ends.
import { randomBytes } from 'node:crypto';
import { ENGINES, PG_ADMIN_URL } from './db.js';
import { dropTemplates } from './pg-template.js';

export default async function setup(): Promise<() => Promise<void>> {
  process.env.PALISADE_TEST_RUN = randomBytes(6).toString('hex');
  if (!ENGINES.includes('postgres')) return async () => undefined;
  // Not reachable: the suites that need PostgreSQL say so themselves.
  await dropTemplates(PG_ADMIN_URL, 'orphans').catch(() => undefined);
  return async () => {
    await dropTemplates(PG_ADMIN_URL, 'this run').catch(() => undefined);
  };
}
