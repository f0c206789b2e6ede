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
}

interface Ctx {
  project?: string;
}

/**
 * Drives `targets` round-robin (many distinct sessions, no pipelining) and checks every
 * response body: each row must belong to the requesting caller's project.
 */
export async function runLoad(base: string, targets: Target[], opts: { seconds: number; connections: number; rate?: number; method?: 'GET' | 'POST'; body?: (i: number) => string; check?: boolean }): Promise<LoadResult> {
  let next = 0;
  let leaks = 0;
  let checked = 0;
  const check = opts.check ?? true;
  const result = await autocannon({
    url: base,
    connections: opts.connections,
    pipelining: 1,
    duration: opts.seconds,
    ...(opts.rate ? { overallRate: opts.rate } : {}),
    requests: [
      {
        method: opts.method ?? 'GET',
        setupRequest: (req, context) => {
          const i = next++ % targets.length;
          const t = targets[i] as Target;
          (context as Ctx).project = t.project;
          return { ...req, path: t.path, headers: { ...t.headers, ...(opts.body ? { 'content-type': 'application/json' } : {}) }, ...(opts.body ? { body: opts.body(i) } : {}) };
        },
        onResponse: (status, body, context) => {
          if (!check || status !== 200) return;
          checked++;
          try {
            const parsed = JSON.parse(body) as { assets?: { projectId: string }[] };
            const project = (context as Ctx).project;
            if (!parsed.assets || parsed.assets.length === 0 || parsed.assets.some((a) => a.projectId !== project)) leaks++;
          } catch {
            leaks++;
          }
        },
      },
    ],
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
  };
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
