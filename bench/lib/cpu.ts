import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';

/**
 * CPU placement and accounting for the load bench (issue 15: a bench that measures the servers,
 * not itself). The load generator (this process, autocannon included) is pinned to one CPU and
 * every server to another, so neither steals the other's cycles; PostgreSQL floats. Each round
 * reads the CPU time every party used, from /proc: a server's time over the requests it served
 * is the figure that does not depend on the generator.
 */

const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** The CPU the generator runs on, and the one the servers run on (the same one on a 1-CPU machine: then nothing is pinned). */
export const PLACEMENT = (() => {
  const n = cpus().length;
  const pinned = n >= 2 && process.env.BENCH_PIN !== '0' && spawnSync('taskset', ['--version']).status === 0;
  return { pinned, generator: 0, servers: pinned ? 1 : 0, cpus: n };
})();

/** Pins every thread of this process (the generator) to its CPU; a no-op when not pinned. */
export function pinGenerator(): void {
  if (!PLACEMENT.pinned) return;
  const r = spawnSync('taskset', ['-a', '-p', '-c', String(PLACEMENT.generator), String(process.pid)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`taskset could not pin the load generator: ${r.stderr}`);
}

/** The command prefix that starts a server on the servers' CPU. */
export function serverPrefix(): string[] {
  return PLACEMENT.pinned ? ['taskset', '-c', String(PLACEMENT.servers)] : [];
}

/** CPU seconds (user + system) a process has used, or null when it is gone. */
export function processCpuSeconds(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

/** CPU seconds of every PostgreSQL process of this machine (postmaster, backends, workers), by pid. */
export function postgresCpu(): Map<number, number> {
  const out = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'postgres') continue;
    } catch {
      continue;
    }
    const pid = Number(entry);
    const used = processCpuSeconds(pid);
    if (used !== null) out.set(pid, used);
  }
  return out;
}

/**
 * What PostgreSQL used between two readings: each process's growth, a new one's whole time. A
 * backend that exited in between (an idle pool connection closed) takes its last slice with it:
 * the figure is a floor.
 */
export function postgresDelta(before: Map<number, number>, after: Map<number, number>): number {
  let total = 0;
  for (const [pid, used] of after) total += used - (before.get(pid) ?? 0);
  return total;
}

/** This process's CPU seconds (the generator: autocannon runs in it). */
export const generatorCpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

export interface CpuUse {
  /** CPU seconds over the round. */
  server: number;
  generator: number;
  postgres: number;
  wallSeconds: number;
}

/** Measures the CPU each party uses while `work` runs. */
export async function measureCpu<T>(serverPid: number, work: () => Promise<T>): Promise<{ result: T; cpu: CpuUse }> {
  const before = { server: processCpuSeconds(serverPid) ?? 0, generator: generatorCpuSeconds(), postgres: postgresCpu(), at: performance.now() };
  const result = await work();
  const cpu: CpuUse = {
    server: (processCpuSeconds(serverPid) ?? before.server) - before.server,
    generator: generatorCpuSeconds() - before.generator,
    postgres: postgresDelta(before.postgres, postgresCpu()),
    wallSeconds: (performance.now() - before.at) / 1000,
  };
  return { result, cpu };
}

/** A round whose generator used more than this share of its one CPU measured the generator, not the server. */
export const GENERATOR_BOUND = 0.9;
