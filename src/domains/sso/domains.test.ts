import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type Problem, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { startLoopbackDns, type LoopbackDns } from '../../../test/support/dns.js';
import { STEP_UP_SECONDS } from '../../http/route.js';
import { auditSelect } from '../../../test/support/evidence.js';

interface Domain {
  id: string;
  domain: string;
  status: 'pending' | 'verified';
  verification: { type: 'TXT'; name: string; value: string };
  verifiedAt: string | null;
}

/** Verified email domains, proven through a real DNS server on loopback. */
describe.each(ENGINES)('verified email domains on %s', (engine) => {
  let h: TestApp;
  let dns: LoopbackDns;
  let acme: string;
  let globex: string;
  let acmeOwner: string;
  let globexOwner: string;
  let n = 0;

  const call = (cookie: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object): Promise<LightMyRequestResponse> =>
    h.built.app.inject({ method, url, headers: { cookie, origin: ORIGIN }, ...(payload === undefined ? {} : { payload }) });
  const claim = (cookie: string, org: string, domain: string) => call(cookie, 'POST', `/api/orgs/${org}/domains`, { domain });
  const verify = (cookie: string, org: string, id: string) => call(cookie, 'POST', `/api/orgs/${org}/domains/${id}/verify`);
  const publish = (d: Domain, ...records: string[][]) => dns.zone.set(d.verification.name, { txt: records });
  const fresh = () => `d${++n}-${Math.random().toString(36).slice(2, 8)}.example`;
  const events = async (org: string, action: string, targetId: string) =>
    auditSelect<{ details: unknown }>(h, ['details'], `where org_id = $1 and action = $2 and target_id = $3`, [org, action, targetId]);
  const owners = (domain: string) => h.t.owner.query<{ org_id: string }>('select org_id from verified_domains where domain = $1', [domain]);

  beforeAll(async () => {
    dns = await startLoopbackDns();
    h = await createTestApp(engine, { config: { DNS_SERVERS: dns.server } });
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    acmeOwner = await h.cookieFor(h.user('acme', 'owner').email);
    globexOwner = await h.cookieFor(h.user('globex', 'owner').email);
  });
  afterAll(async () => {
    await h?.close();
    await dns?.close();
  });
  beforeEach(() => dns.zone.clear());

  it('claims a domain, refuses it until DNS holds the record, then verifies it', async () => {
    const name = fresh();
    const res = await claim(acmeOwner, acme, name.toUpperCase());
    expect(res.statusCode, res.body).toBe(201);
    const d = res.json<Domain>();
    expect(d).toMatchObject({ domain: name, status: 'pending', verifiedAt: null, verification: { type: 'TXT', name: `_palisade-verification.${name}` } });
    expect(d.verification.value).toMatch(/^palisade-verification=[A-Za-z0-9_-]{32}$/);

    const missing = await verify(acmeOwner, acme, d.id);
    expect(missing.statusCode).toBe(422);
    expect(missing.json<Problem>()).toMatchObject({ code: 'domain_unverified' });
    expect(missing.json<Problem>().detail).toContain(d.verification.value);

    // Someone else's value, or ours with a character changed, proves nothing.
    // (The changed character differs from the real one: a random value ends in 'x' one time in 64.)
    const last = d.verification.value.slice(-1) === 'x' ? 'y' : 'x';
    publish(d, ['palisade-verification=somebody-elses'], [`${d.verification.value.slice(0, -1)}${last}`], ['v=spf1 -all']);
    expect((await verify(acmeOwner, acme, d.id)).json<Problem>().code).toBe('domain_unverified');
    expect(await owners(name)).toEqual([]);

    // DNS may split one TXT record into several strings: they are one value.
    publish(d, ['v=spf1 -all'], [d.verification.value.slice(0, 30), d.verification.value.slice(30)]);
    const ok = await verify(acmeOwner, acme, d.id);
    expect(ok.statusCode, ok.body).toBe(200);
    expect(ok.json<Domain>()).toMatchObject({ id: d.id, status: 'verified' });
    expect(await owners(name)).toEqual([{ org_id: acme }]);
    expect(await h.built.services.domains.orgOfEmail(`Someone@${name.toUpperCase()}`)).toBe(acme);
    expect(await events(acme, 'domain.claimed', d.id)).toHaveLength(1);
    expect(await events(acme, 'domain.verified', d.id)).toHaveLength(1);

    // Verifying again is refused and asks DNS nothing.
    dns.asked.length = 0;
    const again = await verify(acmeOwner, acme, d.id);
    expect(again.statusCode).toBe(409);
    expect(again.json<Problem>().detail).toBe('the domain is verified already');
    expect(dns.asked).toEqual([]);
    const list = await call(acmeOwner, 'GET', `/api/orgs/${acme}/domains`);
    expect(list.json<{ domains: Domain[] }>().domains.filter((x) => x.id === d.id)).toEqual([ok.json<Domain>()]);
  });

  it('refuses names that are not DNS host names, and one domain claimed twice in two spellings', async () => {
    const bad = ['127.0.0.1', 'localhost', 'a_b.example', '-a.example', 'a..example', 'ex\u202Eample.com', 'ex\u200Bample.com', 'user@example.com', 'example.com/x', `${'a'.repeat(64)}.example`, 'x'.repeat(301)];
    for (const domain of bad) {
      const res = await claim(acmeOwner, acme, domain);
      expect(res.statusCode, domain).toBe(400);
      expect(res.json<Problem>().code, domain).toBe('validation_failed');
    }
    const name = fresh();
    expect((await claim(acmeOwner, acme, `${name}.`)).statusCode).toBe(201);
    const again = await claim(acmeOwner, acme, name.toUpperCase());
    expect(again.statusCode).toBe(409);
    expect(again.json<Problem>()).toMatchObject({ code: 'conflict' });
    // A non-ASCII name is stored in its IDNA form, so both spellings are the same claim.
    const idna = (await claim(acmeOwner, acme, `bücher-${name}`)).json<Domain>();
    expect(idna.domain).toMatch(/^xn--bcher-[a-z0-9-]+\.example$/);
    expect((await claim(acmeOwner, acme, idna.domain)).statusCode).toBe(409);
  });

  it('keeps a verified domain to one org: another may not claim it, nor verify its own claim', async () => {
    const name = fresh();
    const mine = (await claim(acmeOwner, acme, name)).json<Domain>();
    const theirs = (await claim(globexOwner, globex, name)).json<Domain>();
    expect(theirs.verification.value).not.toBe(mine.verification.value);
    publish(mine, [mine.verification.value], [theirs.verification.value]);
    expect((await verify(acmeOwner, acme, mine.id)).statusCode).toBe(200);

    const late = await verify(globexOwner, globex, theirs.id);
    expect(late.statusCode).toBe(409);
    expect(late.json<Problem>().detail).toBe('another organization has verified this domain');
    expect((await claim(globexOwner, globex, `${name}.`)).statusCode).toBe(409);
    expect(await owners(name)).toEqual([{ org_id: acme }]);
    const pending = (await call(globexOwner, 'GET', `/api/orgs/${globex}/domains`)).json<{ domains: Domain[] }>().domains.find((x) => x.id === theirs.id);
    expect(pending?.status).toBe('pending');
    expect(await events(globex, 'domain.verified', theirs.id)).toEqual([]);

    // Once acme lets go, globex's pending claim can be proven.
    expect((await call(acmeOwner, 'DELETE', `/api/orgs/${acme}/domains/${mine.id}`)).statusCode).toBe(204);
    expect(await owners(name)).toEqual([]);
    expect(await h.built.services.domains.orgOfEmail(`a@${name}`)).toBeNull();
    expect(await events(acme, 'domain.removed', mine.id)).toEqual([{ details: { domain: name, wasVerified: true } }]);
    expect((await verify(globexOwner, globex, theirs.id)).statusCode).toBe(200);
    expect(await owners(name)).toEqual([{ org_id: globex }]);
  });

  it('answers 404 for another org\u2019s claim, under either org\u2019s URL, and changes nothing', async () => {
    const d = (await claim(acmeOwner, acme, fresh())).json<Domain>();
    publish(d, [d.verification.value]);
    for (const url of [`/api/orgs/${globex}/domains/${d.id}/verify`, `/api/orgs/${acme}/domains/${d.id}/verify`]) {
      expect((await call(globexOwner, 'POST', url)).statusCode, url).toBe(404);
    }
    for (const url of [`/api/orgs/${globex}/domains/${d.id}`, `/api/orgs/${acme}/domains/${d.id}`]) {
      expect((await call(globexOwner, 'DELETE', url)).statusCode, url).toBe(404);
    }
    expect((await call(globexOwner, 'GET', `/api/orgs/${globex}/domains`)).json<{ domains: Domain[] }>().domains.map((x) => x.id)).not.toContain(d.id);
    const still = (await call(acmeOwner, 'GET', `/api/orgs/${acme}/domains`)).json<{ domains: Domain[] }>().domains.find((x) => x.id === d.id);
    expect(still?.status).toBe('pending');
  });

  it('needs sso:manage, and a fresh proof to verify or remove', async () => {
    const d = (await claim(acmeOwner, acme, fresh())).json<Domain>();
    for (const role of ['member', 'viewer', 'project_viewer'] as const) {
      const cookie = await h.cookieFor(h.user('acme', role).email);
      expect((await call(cookie, 'GET', `/api/orgs/${acme}/domains`)).statusCode, role).toBe(403);
      expect((await claim(cookie, acme, fresh())).statusCode, role).toBe(403);
      expect((await verify(cookie, acme, d.id)).statusCode, role).toBe(403);
    }
    const admin = await h.cookieFor(h.user('acme', 'admin').email);
    expect((await claim(admin, acme, fresh())).statusCode).toBe(201);

    h.clock.advance((STEP_UP_SECONDS + 1) * 1000);
    try {
      publish(d, [d.verification.value]);
      for (const res of [await verify(acmeOwner, acme, d.id), await call(acmeOwner, 'DELETE', `/api/orgs/${acme}/domains/${d.id}`)]) {
        expect(res.statusCode).toBe(403);
        expect(res.json<Problem>().code).toBe('step_up_required');
      }
      expect(await owners(d.domain)).toEqual([]);
    } finally {
      acmeOwner = await h.cookieFor(h.user('acme', 'owner').email);
      globexOwner = await h.cookieFor(h.user('globex', 'owner').email);
    }
  });

  it('says the lookup failed when DNS fails or does not answer, and verifies nothing', { timeout: 30_000 }, async () => {
    const d = (await claim(acmeOwner, acme, fresh())).json<Domain>();
    dns.zone.set(d.verification.name, { fail: 'SERVFAIL' });
    const failed = await verify(acmeOwner, acme, d.id);
    expect(failed.statusCode).toBe(422);
    expect(failed.json<Problem>()).toMatchObject({ code: 'domain_unverified' });
    expect(failed.json<Problem>().detail).toMatch(/lookup of .* failed \(ESERVFAIL\)/);

    dns.zone.set(d.verification.name, { silent: true });
    const silent = await verify(acmeOwner, acme, d.id);
    expect(silent.statusCode).toBe(422);
    expect(silent.json<Problem>().detail).toMatch(/failed \(ETIMEOUT\)/);
    expect(await owners(d.domain)).toEqual([]);
  });

  it('lets exactly one of two orgs verifying the same domain at once win', async () => {
    const name = fresh();
    const a = (await claim(acmeOwner, acme, name)).json<Domain>();
    const g = (await claim(globexOwner, globex, name)).json<Domain>();
    publish(a, [a.verification.value], [g.verification.value]);
    const results = await Promise.all([verify(acmeOwner, acme, a.id), verify(globexOwner, globex, g.id), verify(acmeOwner, acme, a.id)]);
    const winners = (await owners(name)).map((r) => r.org_id);
    expect(winners).toHaveLength(1);
    const winner = winners[0];
    const statuses = results.map((r) => r.statusCode);
    expect(statuses[1]).toBe(winner === globex ? 200 : 409);
    // Acme's two calls: one wins when acme does, the other is told it is verified already.
    expect([statuses[0], statuses[2]].sort()).toEqual(winner === acme ? [200, 409] : [409, 409]);
    const verifiedEvents = [...(await events(acme, 'domain.verified', a.id)), ...(await events(globex, 'domain.verified', g.id))];
    expect(verifiedEvents).toHaveLength(1);
  });
});
