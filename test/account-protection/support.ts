/**
 * Helpers of the account-protection suites only: percentiles of timings, random client
 * addresses. The shared ones (users, calls, MFA flows, audit evidence, a second server instance)
 * are in test/support.
 */

export function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

/** A random documentation-range address, so that limiter keys never collide across runs. */
export function randomIp(): string {
  const b = () => Math.floor(Math.random() * 250) + 1;
  return `198.18.${b()}.${b()}`;
}
