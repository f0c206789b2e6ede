import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_RUNTIME_ROLE } from './db.js';

/** The real `palisade` CLI in a child process. */
export const BIN = fileURLToPath(new URL('../../bin/palisade.mjs', import.meta.url));

/**
 * The environment of a CLI run against a test app's PostgreSQL database (its owner URL, the
 * test runtime role), with the test KEK and session secret and a fresh state directory.
 */
export function cliEnv(ownerUrl: string | null, extra: Record<string, string> = {}): Record<string, string> {
  return {
    PALISADE_ENV: 'test',
    PALISADE_KEKS: `k1:${Buffer.alloc(32, 7).toString('base64')}`,
    PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
    PALISADE_STATE_DIR: mkdtempSync(join(tmpdir(), 'palisade-cli-')),
    LOG_LEVEL: 'silent',
    DATABASE_URL: ownerUrl ?? '',
    PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE,
    ...extra,
  };
}

export interface Outcome {
  code: number;
  out: string;
  err: string;
}

export function runBin(args: string[], env: Record<string, string>): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const base: Record<string, string | undefined> = { ...process.env };
    delete base.DATABASE_RUNTIME_URL;
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
  });
}
