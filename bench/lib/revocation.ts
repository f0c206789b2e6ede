import type { BenchUser } from './dataset.js';
import { BENCH } from './env.js';
import { percentile } from './load.js';
import { assetsPath, palisadeSessions } from './sessions.js';

export interface RevocationLag {
  samples: number;
  /** ms from the moment A answered the sign-out to B's first refusal. */
  p50: number;
  p99: number;
  max: number;
  /** Requests B still served with the signed-out session after A had answered the sign-out. */
  servedAfter: number;
  /** Requests A served with it after its own answer (must be 0: immediate where revoked). */
  servedByA: number;
}

const SESSION_COOKIE = '__Host-palisade_session';

/**
 * Two server processes on one database (issue 15, "revocation visible on another instance"): each
 * sample is a fresh session, read through B until B serves it from its authentication cache,
 * signed out through A (`POST /api/auth/logout`); then A is asked once (it must refuse at once)
 * and B is asked back to back until it refuses. The lag is from A's answer to B's first refusal,
 * so it includes one request's round trip to B.
 */
export async function revocationLag(aBase: string, bBase: string, users: BenchUser[], samples: number): Promise<RevocationLag> {
  const picked = Array.from({ length: samples }, (_, i) => users[i % users.length] as BenchUser);
  const targets = await palisadeSessions(picked);
  const lags: number[] = [];
  let servedAfter = 0;
  let servedByA = 0;
  for (let i = 0; i < samples; i++) {
    const u = picked[i] as BenchUser;
    const cookie = targets[i]?.headers.cookie ?? '';
    const url = assetsPath('/api', u);
    // A few reads: the first may be read while the session's issue is still being announced.
    for (let j = 0; j < 3; j++) await expectStatus(bBase, url, cookie, 200);
    await expectStatus(aBase, url, cookie, 200);
    const out = await fetch(`${aBase}/api/auth/logout`, { method: 'POST', headers: { cookie, origin: BENCH.publicOrigin } });
    if (out.status !== 204) throw new Error(`sign-out failed: ${out.status} ${await out.text()}`);
    const answered = performance.now();
    if ((await fetch(`${aBase}${url}`, { headers: { cookie } })).status === 200) servedByA++;
    for (;;) {
      const res = await fetch(`${bBase}${url}`, { headers: { cookie } });
      await res.arrayBuffer();
      if (res.status === 401) break;
      if (res.status !== 200) throw new Error(`unexpected ${res.status} from B`);
      servedAfter++;
      if (performance.now() - answered > 10_000) throw new Error('B still served a signed-out session after 10 s');
    }
    lags.push(performance.now() - answered);
  }
  lags.sort((x, y) => x - y);
  return { samples, p50: percentile(lags, 50), p99: percentile(lags, 99), max: lags[lags.length - 1] ?? 0, servedAfter, servedByA };
}

async function expectStatus(base: string, url: string, cookie: string, status: number): Promise<void> {
  const res = await fetch(`${base}${url}`, { headers: { cookie } });
  await res.arrayBuffer();
  if (res.status !== status) throw new Error(`${url} answered ${res.status}, expected ${status}`);
}

export { SESSION_COOKIE };
