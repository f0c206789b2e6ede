import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { serverPrefix } from './cpu.js';

export interface Server {
  name: string;
  base: string;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Each contender runs in its own Node process (tsx loader), pinned to the servers' CPU (cpu.ts;
 * taskset execs node, so the pid is the server's), apart from the load generator's.
 */
export function startServer(name: string, script: string, port: number, env: Record<string, string>, nodeArgs: string[] = []): Promise<Server> {
  const readyLine = 'ready';
  const file = fileURLToPath(new URL(`../servers/${script}`, import.meta.url));
  const command = [...serverPrefix(), process.execPath, ...nodeArgs, '--import', 'tsx', file];
  const proc = spawn(command[0] as string, command.slice(1), {
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start: ${out}`)), 120_000);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.split('\n').some((l) => l.trim() === readyLine)) {
        clearTimeout(timer);
        resolve({
          name,
          base: `http://127.0.0.1:${port}`,
          proc,
          stop: () =>
            new Promise<void>((r) => {
              if (proc.exitCode !== null) return r();
              proc.once('exit', () => r());
              proc.kill('SIGTERM');
            }),
        });
      }
    };
    proc.stdout?.on('data', onData);
    proc.stderr?.on('data', (d: Buffer) => (out += d.toString()));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      if (!out.includes(readyLine)) reject(new Error(`${name} exited (${code}): ${out}`));
    });
  });
}

export function runToExit(script: string, env: Record<string, string>): Promise<string> {
  const file = fileURLToPath(new URL(`../servers/${script}`, import.meta.url));
  const proc = spawn(process.execPath, ['--import', 'tsx', file], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve, reject) => proc.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${script} failed (${code}): ${out}`)))));
}
