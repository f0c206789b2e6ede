import { RATE_LIMIT_POLICIES } from '../route.js';
import type { PolicyLimit, PolicyTable } from './types.js';

/**
 * Defaults, per key (the pipeline decides what a key is: an IP, an IP + account, an API key).
 * The limiter is the outer layer; the DB-backed lockout is what protects an account when Redis
 * is down, so these are tuned to stop floods without bothering a person who mistypes.
 */
export const DEFAULT_POLICIES: PolicyTable = Object.freeze({
  // 10 a minute: a person retrying a password never gets near it; a sprayer behind one address
  // gets 14,400 guesses a day at most, spread over accounts that each have their own lockout.
  login: { limit: 10, windowSeconds: 60 },
  // 5 an hour: a household or office behind one NAT can still sign up a few people; a script
  // cannot mass-create accounts or use the 409 "taken" answer to enumerate emails quickly.
  register: { limit: 5, windowSeconds: 3600 },
  // 5 an hour: each request sends an email, so this caps mail-bombing a victim and our sender's
  // reputation cost; a user who lost the first mail can still ask again a few times.
  'password-reset': { limit: 5, windowSeconds: 3600 },
  // 10 per 15 minutes, for asking for a sign-in link and for redeeming one: each ask is a mail
  // (also capped per address: one victim gets at most 10 per 15 minutes from here); redeeming
  // needs an unguessable token and the asking browser's cookie, so this only bounds noise.
  'magic-link': { limit: 10, windowSeconds: 900 },
  // 10 an hour, for confirming a verification link and for asking for a new one: each new link
  // is a mail (per address and per email, so one victim gets at most 10 from here); confirming
  // takes the password, whose guesses the account lockout counts as well.
  'email-verify': { limit: 10, windowSeconds: 3600 },
  // 20 an hour: invitation tokens are unguessable (256-bit), so this only bounds scanning noise;
  // an admin onboarding a team from one office address still gets through.
  'invitation-accept': { limit: 20, windowSeconds: 3600 },
  // 10 per 5 minutes, per pending sign-in (counted once the handler has found it) and per
  // signed-in user. Guessing is bounded by the account lockout (5 failures) anyway; this stops a
  // flood of verifications, and leaves room for a typo or two.
  'mfa-verify': { limit: 10, windowSeconds: 300 },
  // 100 per 5 minutes per address on the public second-step routes (mfa/verify, mfa/passkey):
  // the `login` limit lets one address start at most 50 sign-ins in 5 minutes, each may need a
  // retry; beyond that, calls from one address are made-up tokens, each a database lookup.
  'mfa-verify-address': { limit: 100, windowSeconds: 300 },
  // 300 a minute: load balancers and orchestrators probe every few seconds, several from one
  // NAT address; /readyz touches the database, so one address cannot turn it into a DB flood.
  probe: { limit: 300, windowSeconds: 60 },
  // 600 a minute (10/s sustained) per signed-in actor: above what the console or a well-behaved
  // integration does, low enough that one key cannot monopolise the database pool.
  authenticated: { limit: 600, windowSeconds: 60 },
  // 600 a minute per sending address on provider-signed inbound webhooks: providers send bursts
  // (a retry storm after their outage) from few addresses; the signature check is one HMAC.
  inbound: { limit: 600, windowSeconds: 60 },
  // 10 per 5 minutes per signed-in actor (per key and creator) for verifying an org's audit chain:
  // each call walks and re-hashes every event of the org, so `authenticated` would let one member
  // keep the database busy; a console showing the result, or an integration checking on a
  // schedule, stays far below it.
  'audit-verify': { limit: 10, windowSeconds: 300 },
  // 20 per 10 minutes per signed-in actor for a test event sent on request to a destination
  // outside (an audit stream's receiver): each answer says whether a host's port answered,
  // refused, timed out or spoke TLS, so `authenticated` would make it a port scanner of the
  // internet from our addresses; someone setting up a SIEM retries a handful of times.
  'outbound-test': { limit: 20, windowSeconds: 600 },
});

/** Merges overrides into the defaults and refuses nonsense at start-up rather than at the first hit. */
export function resolvePolicies(overrides: Partial<PolicyTable> = {}): PolicyTable {
  for (const name of Object.keys(overrides)) {
    if (!(RATE_LIMIT_POLICIES as readonly string[]).includes(name)) throw new Error(`unknown rate-limit policy ${name}`);
  }
  const table = { ...DEFAULT_POLICIES, ...overrides };
  for (const name of RATE_LIMIT_POLICIES) {
    assertValid(name, table[name]);
  }
  return Object.freeze(table);
}

function assertValid(name: string, p: PolicyLimit | undefined): void {
  if (!p) throw new Error(`rate-limit policy ${name} has no limit`);
  if (!Number.isInteger(p.limit) || p.limit < 1) throw new Error(`rate-limit policy ${name}: limit must be an integer >= 1`);
  if (!Number.isFinite(p.windowSeconds) || p.windowSeconds <= 0) throw new Error(`rate-limit policy ${name}: windowSeconds must be > 0`);
}
