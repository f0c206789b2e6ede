import autocannon from 'autocannon';

export interface Target {
  path: string;
  headers: Record<string, string>;
  /** The project every returned row must belong to: anything else is a tenant leak. */
  project: string;
}

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  p999: number;
  non2xx: number;
  errors: number;
  leaks: number;
  checked: number;
  /** Responses received (every status). */
  total: number;
}

/**
 * One response in this many has its body parsed and checked (the first of each connection's
 * cycle): parsing every body cost the generator more than the bare server spent answering, which
 * capped every contender near the same rate (issue 15). A leak in any checked body fails the run.
 */
export const CHECK_EVERY = Number(process.env.BENCH_CHECK_EVERY ?? 10);

interface Ctx {
  project?: string;
}

/**
 * Drives `targets` round-robin (many distinct sessions, no pipelining) and checks a sample of
 * response bodies (CHECK_EVERY): each row must belong to the requesting caller's project.
 */
export async function runLoad(base: string, targets: Target[], opts: { seconds: number; connections: number; rate?: number; method?: 'GET' | 'POST'; body?: (i: number) => string; check?: boolean }): Promise<LoadResult> {
  let next = 0;
  let leaks = 0;
  let checked = 0;
  const check = opts.check ?? true;
  const request = {
    method: opts.method ?? 'GET',
    setupRequest: (req: autocannon.Request, context: Ctx) => {
      const i = next++ % targets.length;
      const t = targets[i] as Target;
      context.project = t.project;
      return { ...req, path: t.path, headers: { ...t.headers, ...(opts.body ? { 'content-type': 'application/json' } : {}) }, ...(opts.body ? { body: opts.body(i) } : {}) };
    },
  };
  const checkedRequest = {
    ...request,
    onResponse: (status: number, body: string, context: Ctx) => {
      if (status !== 200) return;
      checked++;
      try {
        const parsed = JSON.parse(body) as { assets?: { projectId: string }[] };
        if (!parsed.assets || parsed.assets.length === 0 || parsed.assets.some((a) => a.projectId !== context.project)) leaks++;
      } catch {
        leaks++;
      }
    },
  };
  // Each connection walks this sequence and starts over: one checked request, then unchecked ones.
  const sequence = check ? [checkedRequest, ...Array.from({ length: Math.max(0, CHECK_EVERY - 1) }, () => request)] : [request];
  const result = await autocannon({
    url: base,
    connections: opts.connections,
    pipelining: 1,
    duration: opts.seconds,
    ...(opts.rate ? { overallRate: opts.rate } : {}),
    // autocannon's types declare the context as an untyped record.
    requests: sequence as unknown as autocannon.Request[],
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    p999: result.latency.p99_9,
    non2xx: result.non2xx,
    errors: result.errors,
    leaks,
    checked,
    total: result.requests.total,
  };
}

/** The nearest-rank percentile (p in 0–100); NaN for no samples. */
export function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
