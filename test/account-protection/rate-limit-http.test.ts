/**
 * Rate limiting seen through HTTP: 429 with Retry-After and RateLimit-* headers and a problem
 * body; per-address and per-account keys that a guesser cannot sidestep by changing the other
 * one, by spoofing X-Forwarded-For, or by walking an IPv6 /64; signed-in calls limited per
 * user. The limiter itself (Lua, memory) has its own tests in src/http/rate-limit.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiToken, randomToken } from '../../src/crypto/index.js';
import { mailTo } from '../support/accounts.js';
import { createTestApp, RELAXED_LIMITS, type TestApp } from '../support/app.js';
import { freshOrg, passwordUser, WRONG } from '../support/users.js';
import { audit, lockState } from '../support/evidence.js';
import { bearer, call, code } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { enrollTotp, login, pendingToken, verifyMfa } from '../support/mfa.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';

const LIMITS = 'login=3/60,mfa-verify=3/60,authenticated=5/60,probe=1000/60,register=1000/60,password-reset=3/60,invitation-accept=1000/60';

describe('rate limits through HTTP (per-process limiter)', () => {
  let h: TestApp;
  let n = 0;
  /** An email nobody has used yet: isolates the per-address key from the per-account one. */
  const fresh = () => `nobody-${n++}-${Date.now()}@example.test`;
  beforeAll(async () => {
    h = await createTestApp('postgres', { config: { RATE_LIMITS: LIMITS, TRUSTED_PROXIES: '10.0.0.1,fd00::1' } });
  });
  afterAll(async () => h?.close());

  it('answers 429 problem+json with Retry-After and RateLimit-* headers, and runs no password check', async () => {
    const ip = '203.0.113.10';
    const remaining: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await login(h, fresh(), WRONG, { ip });
      expect(res.statusCode).toBe(401);
      expect(res.headers['ratelimit-limit']).toBe('3');
      remaining.push(String(res.headers['ratelimit-remaining']));
      expect(res.headers['retry-after']).toBeUndefined();
    }
    // The most constrained key is what the headers report (here the address: 2, 1, 0).
    expect(remaining).toEqual(['2', '1', '0']);
    const u = await passwordUser(h);
    const limited = await login(h, u.email, WRONG, { ip });
    expect(limited.statusCode).toBe(429);
    expect(limited.headers['content-type']).toContain('application/problem+json');
    expect(limited.json()).toMatchObject({ status: 429, code: 'rate_limited' });
    const retry = Number(limited.headers['retry-after']);
    expect(retry).toBeGreaterThanOrEqual(1);
    expect(retry).toBeLessThanOrEqual(60);
    expect(limited.headers['ratelimit-limit']).toBe('3');
    expect(limited.headers['ratelimit-remaining']).toBe('0');
    expect(Number(limited.headers['ratelimit-reset'])).toBe(retry);
    expect(limited.headers['set-cookie']).toBeUndefined();
    // Refused before the password: no lockout slot taken, no failed-login evidence.
    expect((await lockState(h, u.id)).failed_logins).toBe(0);
    expect(await audit(h, SYSTEM_ORG_ID, 'auth.login_failed', u.id)).toHaveLength(0);
    // Even the right password is refused from this address now.
    expect((await login(h, u.email, u.password, { ip })).statusCode).toBe(429);
  });

  it('counts per account across addresses (a distributed guesser gets no more tries on one account)', async () => {
    const email = fresh();
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) codes.push((await login(h, email, WRONG, { ip: `203.0.113.${20 + i}` })).statusCode);
    expect(codes).toEqual([401, 401, 401, 429, 429]);
    // Spelling variants of the same account share the key.
    expect((await login(h, `  ${email.toUpperCase()} `, WRONG, { ip: '203.0.113.30' })).statusCode).toBe(429);
  });

  it('a spoofed X-Forwarded-For from an untrusted peer changes neither the key nor the recorded address', async () => {
    const peer = '203.0.113.40';
    const codes: number[] = [];
    for (let i = 0; i < 5; i++) {
      codes.push((await login(h, fresh(), WRONG, { ip: peer, headers: { 'x-forwarded-for': `198.51.100.${i + 1}` } })).statusCode);
    }
    expect(codes).toEqual([401, 401, 401, 429, 429]);
    const u = await passwordUser(h);
    await login(h, u.email, WRONG, { ip: '203.0.113.41', headers: { 'x-forwarded-for': '198.51.100.99' } });
    const [ev] = await audit(h, SYSTEM_ORG_ID, 'auth.login_failed', u.id);
    expect(ev?.ip).toBe('203.0.113.41');
  });

  // In full: from a configured proxy, X-Forwarded-For decides (the rightmost untrusted hop; spoofed
  // hops before it do not)
  it('from a configured proxy, X-Forwarded-For decides (the rightmost untrusted hop)', async () => {
    const proxy = '10.0.0.1';
    // Distinct clients behind the proxy: each has its own budget.
    const distinct: number[] = [];
    for (let i = 0; i < 6; i++) distinct.push((await login(h, fresh(), WRONG, { ip: proxy, headers: { 'x-forwarded-for': `198.51.100.${10 + i}` } })).statusCode);
    expect(distinct).toEqual([401, 401, 401, 401, 401, 401]);
    // One client who prepends random spoofed hops: still one key.
    const spoofed: number[] = [];
    for (let i = 0; i < 5; i++) {
      spoofed.push((await login(h, fresh(), WRONG, { ip: proxy, headers: { 'x-forwarded-for': `1.2.3.${i}, 198.51.100.50` } })).statusCode);
    }
    expect(spoofed).toEqual([401, 401, 401, 429, 429]);
    const u = await passwordUser(h);
    await login(h, u.email, WRONG, { ip: proxy, headers: { 'x-forwarded-for': '7.7.7.7, 198.51.100.60' } });
    const [ev] = await audit(h, SYSTEM_ORG_ID, 'auth.login_failed', u.id);
    expect(ev?.ip).toBe('198.51.100.60');
  });

  it('an IPv6 client cannot walk its /64 for a fresh budget; IPv4 and IPv4-mapped IPv6 share one', async () => {
    const walk: number[] = [];
    for (let i = 1; i <= 5; i++) walk.push((await login(h, fresh(), WRONG, { ip: `2001:db8:77:1::${i.toString(16)}` })).statusCode);
    expect(walk).toEqual([401, 401, 401, 429, 429]);
    // The neighbouring /64 is another subscriber.
    expect((await login(h, fresh(), WRONG, { ip: '2001:db8:77:2::1' })).statusCode).toBe(401);
    const mixed: number[] = [];
    for (const ip of ['::ffff:203.0.113.70', '203.0.113.70', '::ffff:203.0.113.70', '203.0.113.70']) mixed.push((await login(h, fresh(), WRONG, { ip })).statusCode);
    expect(mixed).toEqual([401, 401, 401, 429]);
  });

  it('driven concurrently at several times the limit, admits exactly the limit', async () => {
    const ip = '203.0.113.150';
    const res = await Promise.all(Array.from({ length: 12 }, () => login(h, fresh(), WRONG, { ip })));
    expect(res.filter((r) => r.statusCode !== 429)).toHaveLength(3);
    const email = fresh();
    const acc = await Promise.all(Array.from({ length: 12 }, (_, i) => login(h, email, WRONG, { ip: `203.0.113.${160 + i}` })));
    expect(acc.filter((r) => r.statusCode !== 429)).toHaveLength(3);
  });

  // In full: the second sign-in step is limited per pending token, from whatever address (per
  // address only by the wider mfa-verify-address)
  it('the second sign-in step is limited per pending token, from whatever address', async () => {
    const u = await passwordUser(h);
    const { secret } = await enrollTotp(h, u);
    void secret;
    const token = await pendingToken(h, u);
    const codes: number[] = [];
    for (let i = 0; i < 4; i++) codes.push((await verifyMfa(h, token, { code: '000000' }, { ip: `203.0.113.${80 + i}` })).statusCode);
    expect(codes.slice(0, 3).every((c) => c === 401)).toBe(true);
    expect(codes[3]).toBe(429);
  });

  it('signed-in calls are limited per user, whatever the address; other users are unaffected', async () => {
    const a = await passwordUser(h);
    const b = await passwordUser(h);
    const ca = await h.cookieFor(a.email);
    const codes: number[] = [];
    for (let i = 0; i < 7; i++) codes.push((await call(h, 'GET', '/api/me', { cookie: ca, ip: `203.0.113.${90 + i}` })).statusCode);
    expect(codes).toEqual([200, 200, 200, 200, 200, 429, 429]);
    const last = await call(h, 'GET', '/api/me', { cookie: ca });
    expect(code(last)).toBe('rate_limited');
    expect(Number(last.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect((await call(h, 'GET', '/api/me', { cookie: await h.cookieFor(b.email) })).statusCode).toBe(200);
  });
});

describe('made-up challenges (per-process limiter, a small store)', () => {
  let h: TestApp;
  beforeAll(async () => {
    const limits = `${RELAXED_LIMITS},password-reset=3/3600,mfa-verify=3/300,mfa-verify-address=20/300`;
    // 50 counters per policy instead of 50,000: the flood below stays small and fast.
    h = await createTestApp('postgres', { config: { RATE_LIMITS: limits }, memoryKeysPerPolicy: 50 });
  });
  afterAll(async () => h?.close());

  const madeUp = () => `pal_mfa_${randomToken(32)}`;
  const resetRequest = (email: string, ip: string) => call(h, 'POST', '/api/auth/password-reset/request', { ip, payload: { email } });

  // review R4 finding 2
  // In full: a flood of made-up MFA tokens is refused per address, creates no counters, and resets
  // no other limit
  it('a flood of made-up MFA tokens is refused per address and creates no counters', async () => {
    const victimIp = '198.51.100.200';
    const reset: number[] = [];
    for (let i = 0; i < 4; i++) reset.push((await resetRequest(`reset-${i}-${Date.now()}@example.test`, victimIp)).statusCode);
    expect(reset).toEqual([202, 202, 202, 429]);

    // One address: each made-up token was a database lookup and a counter of its own; now the
    // address's budget (20) runs out and the rest are refused before any lookup.
    const oneAddress: number[] = [];
    for (let i = 0; i < 60; i++) oneAddress.push((await verifyMfa(h, madeUp(), { code: '000000' }, { ip: '203.0.113.250' })).statusCode);
    expect(oneAddress.slice(0, 20).every((s) => s === 400)).toBe(true);
    expect(oneAddress.slice(20).every((s) => s === 429)).toBe(true);
    // Many addresses, four times the store's bound: each address's one call is answered, none
    // creates a per-token counter, and the counters of other policies stay where they were.
    for (let i = 0; i < 200; i++) {
      const res = await verifyMfa(h, madeUp(), { code: '000000' }, { ip: `2001:db8:${(i + 1).toString(16)}::1` });
      expect(res.statusCode).toBe(400);
      expect(code(res)).toBe('token_invalid');
    }
    const still = await resetRequest(`reset-late-${Date.now()}@example.test`, victimIp);
    expect(still.statusCode).toBe(429);
    expect(Number(still.headers['retry-after'])).toBeGreaterThan(3000);

    // A real pending sign-in is still counted per challenge (3), from whatever address.
    const u = await passwordUser(h);
    await enrollTotp(h, u);
    const token = await pendingToken(h, u);
    const tries: number[] = [];
    for (let i = 0; i < 4; i++) tries.push((await verifyMfa(h, token, { code: '000000' }, { ip: `203.0.113.${100 + i}` })).statusCode);
    expect(tries).toEqual([401, 401, 401, 429]);
  });

  it('an email in a body the route does not accept is no account key (keys come from the validated body)', async () => {
    const email = `victim-${Date.now()}@example.test`;
    // password-reset/confirm takes no email: three refused bodies naming the victim, from three addresses.
    for (let i = 0; i < 3; i++) {
      const res = await call(h, 'POST', '/api/auth/password-reset/confirm', { ip: `203.0.113.${210 + i}`, payload: { token: 'pal_pwr_x', password: 'x', email } });
      expect(res.statusCode).toBe(400);
    }
    // The victim's own reset request is not charged for them.
    expect((await resetRequest(email, '203.0.113.220')).statusCode).toBe(202);
  });
});

describe('one allocation, another person\u2019s account (per-process limiter, a small store)', () => {
  let h: TestApp;
  beforeAll(async () => {
    const limits = `${RELAXED_LIMITS},password-reset=3/3600,login=3/60,register=2/3600,email-verify=2/3600`;
    h = await createTestApp('postgres', { config: { RATE_LIMITS: limits }, memoryKeysPerPolicy: 50 });
  });
  afterAll(async () => h?.close());

  const resetRequest = (email: unknown, ip: string) => call(h, 'POST', '/api/auth/password-reset/request', { ip, payload: { email } });

  // review R5 finding A
  // In full: one IPv6 /48 cannot fill a policy’s store with refusing counters: fresh clients
  // elsewhere are still admitted
  it('one IPv6 /48 cannot fill a policy\u2019s store with refusing counters', async () => {
    // More distinct /64s than the store holds, each sending its full budget of junk bodies
    // (counted per address before the body is validated).
    const answers: number[] = [];
    for (let i = 0; i < 60; i++) {
      for (let k = 0; k < 3; k++) answers.push((await resetRequest(42, `2001:db8:4848:${i.toString(16)}::1`)).statusCode);
    }
    // The /48 as a whole gets 16 × 3 = 48 calls an hour; the rest are refused before any /64 counter.
    expect(answers.slice(0, 48).every((s) => s === 400)).toBe(true);
    expect(answers.slice(48).every((s) => s === 429)).toBe(true);
    const refused = await resetRequest('x@example.test', '2001:db8:4848:ffff::1');
    expect(refused.statusCode).toBe(429);
    // The /48's count is shared with its neighbours: only when to come back is said.
    expect(refused.headers['ratelimit-remaining']).toBeUndefined();
    for (const ip of ['198.51.100.7', '203.0.113.9', '2a00:1450::1', '2001:db8:4849::1']) {
      expect((await resetRequest(`fresh-${ip.replace(/[.:]/g, '-')}@example.test`, ip)).statusCode).toBe(202);
    }
  });

  // review R5 finding B
  it('asking for another person\u2019s reset past the caps answers the same 202 and sends no more mail', async () => {
    const victim = await passwordUser(h);
    // Each address is within its own budget (3); per account and address 3 mails, per account 4 × 3.
    const asked: number[] = [];
    for (const ip of ['203.0.113.101', '203.0.113.102', '203.0.113.103', '203.0.113.104']) {
      for (let k = 0; k < 3; k++) asked.push((await resetRequest(victim.email, ip)).statusCode);
    }
    expect(asked.every((s) => s === 202)).toBe(true);
    expect(await mailTo(h, victim.email)).toHaveLength(12);
    // Past the per-account cap: the answer an unknown email gets, the address's own headers, no mail.
    const past = await resetRequest(victim.email, '203.0.113.105');
    const unknown = await resetRequest(`nobody-${Date.now()}@example.test`, '203.0.113.106');
    expect(past.statusCode).toBe(202);
    expect(past.json()).toEqual(unknown.json());
    expect(past.headers['ratelimit-remaining']).toBe(unknown.headers['ratelimit-remaining']);
    expect(await mailTo(h, victim.email)).toHaveLength(12);
    const [capped] = (await audit(h, SYSTEM_ORG_ID, 'auth.password_reset_requested', victim.id)).slice(-1);
    expect(capped?.details).toMatchObject({ mailCapped: true });
  });

  // review R5 finding B
  it('one address asking for another person\u2019s reset leaves the victim\u2019s own reset mail', async () => {
    const victim = await passwordUser(h);
    for (let k = 0; k < 3; k++) expect((await resetRequest(victim.email, '203.0.113.120')).statusCode).toBe(202);
    const own = await resetRequest(victim.email, '198.51.100.60');
    expect(own.statusCode).toBe(202);
    expect(await mailTo(h, victim.email)).toHaveLength(4);
  });

  // review R5 finding B
  // In full: registration and verification resend for another person’s address: past the cap the
  // same 202, no mail; the owner still gets theirs
  it('past the cap, registration and resend for another\u2019s address answer 202 and mail nothing', async () => {
    const email = `squat-${Date.now()}@example.test`;
    const body = { email, password: 'a-long-enough-passphrase-42', name: 'Squatter' };
    const register = (ip: string) => call(h, 'POST', '/api/auth/register', { ip, payload: body });
    const resend = (ip: string) => call(h, 'POST', '/api/auth/verify-email/resend', { ip, payload: { email } });
    // Mail caps per policy: per (account, sender's allocation) 2, per account 4 × 2. Registering
    // twice mails twice (`register`); another address's two resends mail twice (`email-verify`).
    expect([(await register('203.0.113.170')).statusCode, (await register('203.0.113.170')).statusCode]).toEqual([202, 202]);
    expect(await mailTo(h, email)).toHaveLength(2);
    expect([(await resend('203.0.113.171')).statusCode, (await resend('203.0.113.171')).statusCode]).toEqual([202, 202]);
    expect(await mailTo(h, email)).toHaveLength(4);
    // Over that address's own budget it is refused per address, as anyone would be...
    expect((await register('203.0.113.170')).statusCode).toBe(429);
    // ... while past the mail cap the answer stays 202: one /48 gets 2 more links, its third call none.
    expect((await resend('2001:db8:5151:1::1')).statusCode).toBe(202);
    expect((await resend('2001:db8:5151:1::1')).statusCode).toBe(202);
    expect((await resend('2001:db8:5151:2::1')).statusCode).toBe(202);
    expect(await mailTo(h, email)).toHaveLength(6);
    // The owner, from their own address: the same 202 and a link (per account 4 × 2 = 8 an hour).
    expect((await resend('198.51.100.70')).statusCode).toBe(202);
    expect(await mailTo(h, email)).toHaveLength(7);
  });

  // review R5 finding C
  it('RateLimit-* headers count the caller\u2019s address only, never how often others asked for an account', async () => {
    const victim = await passwordUser(h);
    for (let k = 0; k < 3; k++) await resetRequest(victim.email, `203.0.113.${130 + k}`);
    const fresh = await resetRequest(victim.email, '203.0.113.140');
    expect(fresh.headers['ratelimit-remaining']).toBe('2');
    // Login keeps refusing per account; the refusal says when to come back, not what is left.
    for (let k = 0; k < 3; k++) await login(h, victim.email, WRONG, { ip: `203.0.113.${150 + k}` });
    const refused = await login(h, victim.email, WRONG, { ip: '203.0.113.160' });
    expect(refused.statusCode).toBe(429);
    expect(Number(refused.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(refused.headers['ratelimit-remaining']).toBeUndefined();
    expect(refused.headers['ratelimit-limit']).toBeUndefined();
  });
});

/**
 * The third attacker review (S3, machine access, 96efc88): refusals, key authentication and key
 * traffic under small limits (5 a minute for a signed-in actor and for failed key probes). Fixes:
 * src/http/pipeline.ts (the per-actor limit applies before any refusal).
 */
describe.each(ENGINES)('per-actor limits for refusals and API keys on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine, { config: { RATE_LIMITS: RELAXED_LIMITS.replace('authenticated=100000/60', 'authenticated=5/60').replace('probe=100000/60', 'probe=5/60') } });
  });
  afterAll(async () => h?.close());

  // review S3 K-2, fixed. It failed as: refused requests skipped the per-actor limit, and each
  // refusal is an audit write, so a publishable key (public by design) let anyone append to an
  // org's audit trail without limit.
  it('refused requests count against the per-actor limit, so refusals cannot flood the audit trail', async () => {
    const { orgId, cookie } = await freshOrg(h);
    expect((await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie, payload: { browserOrigins: ['https://shop.example'] } })).statusCode).toBe(200);
    const made = await call(h, 'POST', `/api/orgs/${orgId}/api-keys`, { cookie, payload: { name: 'storefront', kind: 'publishable', permissions: ['projects:read'] } });
    expect(made.statusCode, made.body).toBe(201);
    const { token } = made.json<{ token: string }>();
    const denials = async () =>
      (await h.t.owner.query<{ n: number }>("select count(*)::int as n from audit_events where org_id = $1 and action = 'authz.denied'", [orgId]))[0]?.n ?? 0;
    const before = await denials();
    const statuses: number[] = [];
    // Anyone who loaded the shop's page holds the key and can send its Origin from a script.
    for (let i = 0; i < 12; i++) {
      statuses.push((await bearer(h, 'POST', `/v1/orgs/${orgId}/projects`, token, { headers: { origin: 'https://shop.example' }, payload: { name: 'x' } })).statusCode);
    }
    expect(statuses, 'answers to 12 refused writes under a 5/min limit').toContain(429);
    expect((await denials()) - before, 'authz.denied events appended').toBeLessThanOrEqual(5);
    // The same holds for a member probing what they may not do.
    const m = await passwordUser(h, orgId, 'viewer');
    const mc = await h.cookieFor(m.email);
    const memberStatuses: number[] = [];
    for (let i = 0; i < 8; i++) memberStatuses.push((await call(h, 'PATCH', `/api/orgs/${orgId}`, { cookie: mc, payload: { name: 'renamed' } })).statusCode);
    expect(memberStatuses).toContain(429);
  });

  // review S3 K-3, fixed
  it('an address that keeps failing key authentication is refused before the lookup', async () => {
    const { orgId } = await freshOrg(h);
    const ip = '192.0.2.77';
    const forged = () =>
      h.built.app.inject({ method: 'GET', url: `/v1/orgs/${orgId}/projects`, remoteAddress: ip, headers: { authorization: `Bearer ${generateApiToken('sk')}` } });
    let lookups = 0;
    const real = h.built.services.apiKeys.authenticate;
    h.built.services.apiKeys.authenticate = (...args) => {
      lookups++;
      return real(...args);
    };
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 12; i++) statuses.push((await forged()).statusCode);
      expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
      expect(statuses.at(-1)).toBe(429);
      expect(lookups).toBeLessThan(12);
      // Another address is not affected.
      const other = await h.built.app.inject({ method: 'GET', url: `/v1/orgs/${orgId}/projects`, remoteAddress: '198.51.100.9', headers: { authorization: `Bearer ${generateApiToken('sk')}` } });
      expect(other.statusCode).toBe(401);
    } finally {
      h.built.services.apiKeys.authenticate = real;
    }
  });

  // review S3 K-7, fixed
  it('a copied publishable key spends its copier’s budget (per key and address), not the visitors’', async () => {
    const { orgId, cookie } = await freshOrg(h);
    expect((await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie, payload: { browserOrigins: ['https://shop.example'] } })).statusCode).toBe(200);
    const made = await call(h, 'POST', `/api/orgs/${orgId}/api-keys`, { cookie, payload: { name: 'storefront', kind: 'publishable', permissions: ['projects:read'] } });
    const { token } = made.json<{ token: string }>();
    const from = (ip: string) =>
      h.built.app.inject({ method: 'GET', url: `/v1/orgs/${orgId}/projects`, remoteAddress: ip, headers: { authorization: `Bearer ${token}`, origin: 'https://shop.example' } });
    const abuser: number[] = [];
    for (let i = 0; i < 8; i++) abuser.push((await from('203.0.113.7')).statusCode);
    expect(abuser).toContain(429);
    expect((await from('198.51.100.20')).statusCode).toBe(200);
  });

  // review S3 K-4, fixed
  it('a member’s secret keys share one budget: more keys do not buy more requests', async () => {
    const { orgId, cookie } = await freshOrg(h);
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) {
      const made = await call(h, 'POST', `/api/orgs/${orgId}/api-keys`, { cookie, payload: { name: `k${i}`, kind: 'secret', permissions: ['projects:read'] } });
      expect(made.statusCode, made.body).toBe(201);
      tokens.push(made.json<{ token: string }>().token);
    }
    const statuses: number[] = [];
    for (const t of tokens) for (let i = 0; i < 3; i++) statuses.push((await bearer(h, 'GET', `/v1/orgs/${orgId}/projects`, t)).statusCode);
    expect(statuses.filter((x) => x === 200).length).toBeLessThanOrEqual(5);
    expect(statuses).toContain(429);
  });
});
