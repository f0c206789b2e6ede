import { defineConfig } from 'vitest/config';

/**
 * Files that replace a module (vi.mock) run isolated, each in a fresh module graph; the rest share
 * one per worker (isolate: false), which spares every file the ~2 s import of the server's module
 * graph: each file builds its own app, database and clock, so nothing of one file's state reaches
 * another through a module.
 */
const MOCKING = ['src/domains/identity/registration.test.ts', 'src/domains/identity/login.test.ts', 'src/domains/inbound/providers.test.ts'];

export default defineConfig({
  test: {
    globalSetup: ['test/console/global-setup.ts', 'test/support/pg-global-setup.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // expect.poll's default second is not enough on a machine the suite keeps busy (CI measured
    // it at 96 % of both cores): a sign-in that hashes a password and lands took longer.
    expect: { poll: { timeout: 10_000 } },
    reporters: ['default'],
    projects: [
      { extends: true, test: { name: 'shared', include: ['src/**/*.test.ts', 'test/**/*.test.ts'], exclude: MOCKING, isolate: false } },
      { extends: true, test: { name: 'isolated', include: MOCKING } },
    ],
  },
});
