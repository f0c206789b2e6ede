import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The real `palisade` CLI in a child process. */
export const BIN = fileURLToPath(new URL('../../bin/palisade.mjs', import.meta.url));

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
