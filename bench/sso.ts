import { performance } from 'node:perf_hooks';
import { newId } from '../src/crypto/index.js';
import { createTestApp, ORIGIN, type TestApp } from '../test/support/app.js';
import { call, sessionFrom } from '../test/support/client.js';
import { rsaSigningKey, signInAtIdp, startOidcProvider, type IdpAccount } from '../test/support/oidc.js';
import { idpKey, samlForm, TestSamlIdp } from '../test/support/saml.js';
import { percentile } from './lib/load.js';

/**
 * npm run bench:sso — what an SSO sign-in costs in process, against a password sign-in measured
 * in the same run on the same app (PostgreSQL, production password hashing):
 *  1. the OIDC callback (state, PKCE and nonce checks, the code redeemed at a real oidc-provider on
 *     loopback, the ID token's signature checked against its JWKS, the account found by subject,
 *     the session issued) against POST /api/auth/login (argon2id, lockout, session);
 *     and the SAML ACS (node-saml's checks of a Response and Assertion both signed with RSA-SHA256,
 *     the request and assertion id spent in the database, the account found by NameID, the session);
 *  2. the protected read (a project's assets) with the session each one issued: an SSO session
 *     must cost nothing more per request.
 * The IdP's own pages (login, consent) are driven between start and callback and not timed.
 */
const SIGN_INS = Number(process.env.BENCH_SSO_SIGN_INS ?? 200);
const READS = Number(process.env.BENCH_SSO_READS ?? 2000);
const ROUNDS = 3;
const log = (s: string) => process.stdout.write(`${s}\n`);

const ms = (n: number) => n.toFixed(2);
const row = (name: string, xs: number[], base: number[]) =>
  `| ${name} | ${xs.length} | ${ms(percentile(xs, 50))} | ${ms(percentile(xs, 99))} | ${(percentile(xs, 50) / percentile(base, 50)).toFixed(2)} |`;

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const accounts = new Map<string, IdpAccount>();
  const callback = `${ORIGIN}/api/auth/sso/oidc/callback`;
  const idp = await startOidcProvider({
    clients: [{ client_id: 'bench', client_secret: 'bench-client-secret', redirect_uris: [callback] }], accounts, keys: [rsaSigningKey('b1')],
  });
  const h: TestApp = await createTestApp('postgres', { config: { PALISADE_WEBHOOKS_ALLOW_LOOPBACK: 'true', LOG_LEVEL: 'warn' } });
  try {
    const acme = h.orgId('acme');
    const domain = `bench-${newId().slice(0, 8)}.example`;
    const member = h.user('acme', 'member');
    const ownerRow = { id: h.user('acme', 'owner').userId };
    await h.t.owner.query('insert into org_domains (org_id, id, domain, record_value, created_by, created_at, verified_at) values ($1, $2, $3, $4, $5, now(), now())', [
      acme, newId(), domain, 'palisade-verification=bench', ownerRow?.id,
    ]);
    await h.t.owner.query('insert into verified_domains (domain, org_id) values ($1, $2)', [domain, acme]);
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const created = await call(h, 'POST', `/api/orgs/${acme}/sso/connections`, {
      cookie: owner, payload: { kind: 'oidc', name: 'bench', issuer: idp.issuer, clientId: 'bench', clientSecret: 'bench-client-secret', jitRole: 'member' },
    });
    const connectionId = created.json<{ id: string }>().id;
    await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${connectionId}`, { cookie: owner, payload: { enabled: true } });
    // One person, linked at the first sign-in: every timed sign-in is the steady state.
    const ada: IdpAccount = { sub: 'bench-ada', email: `ada@${domain}`, email_verified: true, name: 'Ada' };
    accounts.set(ada.sub, ada);
    // A SAML connection of the same org, reached with ?org&connection (the email routes to the older OIDC one).
    const samlIdp = new TestSamlIdp('https://idp.bench.test', await idpKey('bench idp'));
    const samlCreated = await call(h, 'POST', `/api/orgs/${acme}/sso/connections`, {
      cookie: owner, payload: { kind: 'saml', name: 'bench saml', metadataXml: samlIdp.metadataXml(), jitRole: 'member' },
    });
    const samlId = samlCreated.json<{ id: string }>().id;
    await call(h, 'PATCH', `/api/orgs/${acme}/sso/connections/${samlId}`, { cookie: owner, payload: { enabled: true } });
    const acsPath = `/api/auth/sso/saml/${samlId}/acs`;
    const sp = { acsUrl: `${ORIGIN}${acsPath}`, audience: `${ORIGIN}/api/auth/sso/saml/${samlId}/metadata` };

    async function samlSignIn(times: number[]): Promise<string> {
      const start = await call(h, 'GET', `/api/auth/sso/start?org=${acme}&connection=${samlId}`);
      const flow = start.cookies.find((c) => c.name === '__Host-palisade_saml')?.value ?? '';
      const { id } = TestSamlIdp.requestOf(String(start.headers.location));
      // The IdP's signing is its own cost: outside the timing.
      const body = samlForm(samlIdp.response({ ...sp, nameId: `saml-ada@${domain}`, inResponseTo: id, attributes: { email: `saml-ada@${domain}` } }));
      let cookie: string | null = null;
      times.push(await timed(async () => {
        const res = await call(h, 'POST', acsPath, {
          payload: body, headers: { origin: 'https://idp.bench.test', 'content-type': 'application/x-www-form-urlencoded', cookie: `__Host-palisade_saml=${flow}` },
        });
        if (res.statusCode !== 302) throw new Error(`SAML ACS: ${res.statusCode} ${res.body}`);
        cookie = sessionFrom(res);
      }));
      if (!cookie) throw new Error('no session from SAML');
      return cookie;
    }

    async function ssoSignIn(times: number[]): Promise<string> {
      // Named: the org has a SAML connection too, created at the same (manual) clock instant.
      const start = await call(h, 'GET', `/api/auth/sso/start?org=${acme}&connection=${connectionId}`);
      const flow = start.cookies.find((c) => c.name === '__Host-palisade_sso')?.value ?? '';
      const back = await signInAtIdp(String(start.headers.location), ada.sub, callback);
      let cookie: string | null = null;
      times.push(await timed(async () => {
        const res = await call(h, 'GET', `${back.pathname}${back.search}`, { cookie: `__Host-palisade_sso=${flow}` });
        if (res.statusCode !== 302) throw new Error(`SSO callback: ${res.statusCode} ${res.body}`);
        cookie = sessionFrom(res);
      }));
      if (!cookie) throw new Error('no session from SSO');
      return cookie;
    }
    async function passwordSignIn(times: number[]): Promise<string> {
      let cookie: string | null = null;
      times.push(await timed(async () => {
        const res = await call(h, 'POST', '/api/auth/login', { payload: { email: member.email, password: member.password } });
        if (res.statusCode !== 200) throw new Error(`login: ${res.statusCode} ${res.body}`);
        cookie = sessionFrom(res);
      }));
      if (!cookie) throw new Error('no session from login');
      return cookie;
    }

    await ssoSignIn([]);
    await samlSignIn([]);
    await passwordSignIn([]);
    const saml: number[] = [];
    const sso: number[] = [];
    const password: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < Math.ceil(SIGN_INS / ROUNDS); i++) {
        await passwordSignIn(password);
        await ssoSignIn(sso);
        await samlSignIn(saml);
      }
    }

    const project = h.demo.orgs.find((o) => o.id === acme)?.projects[0]?.id ?? '';
    const url = `/api/orgs/${acme}/projects/${project}/assets?limit=20`;
    const ssoCookie = await ssoSignIn([]);
    const passwordCookie = await passwordSignIn([]);
    const read = async (cookie: string, times: number[]) => {
      times.push(await timed(async () => {
        const res = await call(h, 'GET', url, { cookie });
        if (res.statusCode !== 200) throw new Error(`read: ${res.statusCode} ${res.body}`);
      }));
    };
    for (let i = 0; i < 100; i++) {
      await read(ssoCookie, []);
      await read(passwordCookie, []);
    }
    const readSso: number[] = [];
    const readPassword: number[] = [];
    // Alternating, so that drift in the machine's load falls on both alike.
    for (let i = 0; i < READS; i++) {
      await read(passwordCookie, readPassword);
      await read(ssoCookie, readSso);
    }

    log(`SSO bench: ${SIGN_INS} sign-ins of each kind, ${READS} reads with each session, sequential, in process (app.inject), PostgreSQL`);
    log('| what | n | p50 ms | p99 ms | × baseline p50 |');
    log('|---|---:|---:|---:|---:|');
    log(row('password sign-in (baseline)', password, password));
    log(row('OIDC callback', sso, password));
    log(row('SAML ACS', saml, password));
    log(row('read, password session (baseline)', readPassword, readPassword));
    log(row('read, SSO session', readSso, readPassword));
  } finally {
    await h.close();
    await idp.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
