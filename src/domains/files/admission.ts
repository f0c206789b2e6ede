import { AppError } from '../../kernel/errors.js';

/**
 * Uploads this process receives at once, in all and per org (an eighth, at least 2): each holds
 * a clamd connection while it streams. Returns the admission: it throws rate_limited (the org's
 * share is taken) or unavailable (the process's), else gives the release to call when done.
 */
export function uploadAdmission(concurrency: number): (orgId: string) => () => void {
  // Uploads in flight in this process: in all, and per org (attacker review, finding 2: slow
  // uploads filled clamd's queue and stopped every tenant's).
  let inFlight = 0;
  const inFlightByOrg = new Map<string, number>();
  const perOrg = Math.max(2, Math.floor(concurrency / 8));
  return (orgId: string): (() => void) => {
    const mine = inFlightByOrg.get(orgId) ?? 0;
    if (mine >= perOrg) throw new AppError('rate_limited', `the organization already has ${perOrg} uploads in progress: wait for one to finish`, undefined, { retryAfterSeconds: 10 });
    if (inFlight >= concurrency) throw new AppError('unavailable', 'the server is receiving as many uploads as it accepts at once: try again shortly', undefined, { retryAfterSeconds: 10 });
    inFlight++;
    inFlightByOrg.set(orgId, mine + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      inFlight--;
      const left = (inFlightByOrg.get(orgId) ?? 1) - 1;
      if (left <= 0) inFlightByOrg.delete(orgId);
      else inFlightByOrg.set(orgId, left);
    };
  };
}
