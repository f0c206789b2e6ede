/**
 * Attacker review, session 3: machine access (issue #5, 96efc88) — API keys and the /v1 key
 * context, outbound webhooks (outbox, worker, transport) and inbound webhooks.
 *
 * Each "[review S3 …, fixed]" test demonstrated a confirmed problem (it failed against the code
 * as reviewed) and now holds the fix; "[SOUND …]" tests pin down an attack that was tried and
 * refused; comments marked "open" name confirmed problems left open, with what a fix involves.
 * Fixes: src/http/pipeline.ts (per-actor limit before any refusal; no admin-level permission
 * from outside the admin IP allowlist), src/kernel/permissions.ts (withoutAdminLevel),
 * src/domains/webhooks/worker.ts (one batch per org per pass, round-robin due times),
 * src/domains/webhooks/service.ts + outbox.ts (re-enabling an endpoint marks its org due).
 */
import type { LightMyRequestResponse } from 'fastify';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { generateApiToken } from '../../src/crypto/index.js';
import { createWebhookWorker, newWebhookSecret, type DeliveryOutcome, type WebhookTransport } from '../../src/domains/webhooks/index.js';
import { call, code, freshOrg, passwordUser } from '../account-protection/support.js';
import { seedTenant } from '../isolation/fixtures.js';
import { createTestApp, ORIGIN, RELAXED_LIMITS, type Problem, type TestApp } from '../support/app.js';
import { client, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';

type Json = Record<string, unknown>;
interface KeyView {
  id: string;
  createdBy: string;
}
interface DeliveryView {
  id: string;
  messageId: string;
  status: string;
}

function bearer(h: TestApp, method: 'GET' | 'POST' | 'PATCH' | 'DELETE' | 'HEAD', url: string, token: string, extra: { payload?: object; headers?: Record<string, string> } = {}): Promise<LightMyRequestResponse> {
  return h.built.app.inject({ method, url, headers: { authorization: `Bearer ${token}`, ...extra.headers }, ...(extra.payload ? { payload: extra.payload } : {}) });
}

async function createKey(by: Client, orgId: string, body: Json): Promise<{ key: KeyView; token: string }> {
  const res = await by.call('POST', `/api/orgs/${orgId}/api-keys`, body);
  expect(res.statusCode, res.body).toBe(201);
  return res.json();
}

function quietLogger() {
  return { error: () => undefined, warn: () => undefined, info: () => undefined } as unknown as Parameters<typeof createWebhookWorker>[0]['logger'];
}

/** A transport that answers every delivery at once and records what it was given. */
function recordingTransport(answer = 204): WebhookTransport & { sent: { url: string; id: string }[] } {
  const sent: { url: string; id: string }[] = [];
  return {
    sent,
    send(url: string, headers: Record<string, string>): Promise<DeliveryOutcome> {
      sent.push({ url, id: headers['webhook-id'] ?? '' });
      const ok = answer >= 200 && answer < 300;
      return Promise.resolve({ ok, status: answer, latencyMs: 1, error: ok ? null : `http status ${answer}`, address: null });
    },
  };
}

/** seedTenant's endpoint secret is not a Standard Webhooks secret: give the endpoint a real one. */
async function seedEndpoint(h: TestApp, slug: string): Promise<{ orgId: string; endpointId: string }> {
  const t = await seedTenant(h.t.db, h.built.services.audit, slug);
  await h.t.db.withTenant({ orgId: t.orgId, projectIds: null }, async (tx) => {
    const sealed = await h.built.services.sealer.seal(tx, { scope: t.orgId, table: 'webhook_endpoints', column: 'secret_sealed', row: t.endpointId }, newWebhookSecret());
    await sql`update webhook_endpoints set secret_sealed = ${sealed} where org_id = ${t.orgId} and id = ${t.endpointId}`.execute(tx);
  });
  return { orgId: t.orgId, endpointId: t.endpointId };
}

function workerFor(h: TestApp, transport: WebhookTransport, concurrency = 16) {
  const s = h.built.services;
  return createWebhookWorker({ db: h.t.db, clock: h.clock, sealer: s.sealer, audit: s.audit, logger: quietLogger(), transport, concurrency });
}

describe.each(ENGINES)('review s3 — API keys and webhooks on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let admin: Client;
  let owner: Client;
  let run = 0;
  const uniq = () => `${engine}-${run++}-${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    owner = client(h, await h.cookieFor(h.user('acme', 'owner').email));
  });
  afterAll(async () => h?.close());
  beforeEach(async () => {
    // Worker tests count what a pass sends: no other org's work may be due.
    await h.t.owner.query('delete from webhook_due');
    await h.t.owner.query("update webhook_deliveries set status = 'failed', next_attempt_at = null where status = 'pending'");
  });

  // -------------------------------------------------------------------------------------------
  // API keys
  // -------------------------------------------------------------------------------------------

  it('[review S3 K-1, fixed] keys:manage bypasses the admin IP allowlist: from outside it, an admin lists and revokes every member\u2019s keys through the keys:own routes', async () => {
    const { orgId, cookie: ownerCookie } = await freshOrg(h);
    const orgAdmin = await passwordUser(h, orgId, 'admin');
    const member = await passwordUser(h, orgId, 'member');
    const { key, token } = await createKey(client(h, await h.cookieFor(member.email)), orgId, { name: 'member ci', kind: 'secret', permissions: ['projects:read'] });
    const inside = '198.51.100.7';
    const outside = '203.0.113.9';
    const saved = await call(h, 'PATCH', `/api/orgs/${orgId}/settings`, { cookie: ownerCookie, ip: inside, payload: { adminIpAllowlist: ['198.51.100.0/24'] } });
    expect(saved.statusCode, saved.body).toBe(200);
    const adminCookie = await h.cookieFor(orgAdmin.email);
    // A stolen admin session used from elsewhere: admin-level routes refuse it.
    expect(code(await call(h, 'GET', `/api/orgs/${orgId}/settings`, { cookie: adminCookie, ip: outside }))).toBe('ip_not_allowed');

    // keys:manage (admin-level) acts through routes that need only keys:own (member-level).
    const listed = (await call(h, 'GET', `/api/orgs/${orgId}/api-keys`, { cookie: adminCookie, ip: outside })).json<{ keys: KeyView[] }>().keys;
    expect(listed.map((k) => k.id), 'every member\u2019s keys listed from outside the allowlist').not.toContain(key.id);
    const revoked = await call(h, 'DELETE', `/api/orgs/${orgId}/api-keys/${key.id}`, { cookie: adminCookie, ip: outside });
    expect(revoked.statusCode, 'another member\u2019s key revoked from outside the allowlist').not.toBe(204);
    expect((await bearer(h, 'GET', `/v1/orgs/${orgId}/projects`, token)).statusCode).toBe(200);
    // From outside, a key is not a way to mint admin-level rights either.
    const minted = await call(h, 'POST', `/api/orgs/${orgId}/api-keys`, { cookie: adminCookie, ip: outside, payload: { name: 'x', kind: 'secret', permissions: ['projects:delete'] } });
    expect(minted.statusCode).toBe(403);
    // Member-level work goes on from anywhere: own keys with member-level scopes.
    expect((await call(h, 'POST', `/api/orgs/${orgId}/api-keys`, { cookie: adminCookie, ip: outside, payload: { name: 'y', kind: 'secret', permissions: ['projects:read'] } })).statusCode).toBe(201);

    // From inside the list, keys:manage works as before.
    const inList = (await call(h, 'GET', `/api/orgs/${orgId}/api-keys`, { cookie: adminCookie, ip: inside })).json<{ keys: KeyView[] }>().keys;
    expect(inList.map((k) => k.id)).toContain(key.id);
    expect((await call(h, 'DELETE', `/api/orgs/${orgId}/api-keys/${key.id}`, { cookie: adminCookie, ip: inside })).statusCode).toBe(204);
    expect((await bearer(h, 'GET', `/v1/orgs/${orgId}/projects`, token)).statusCode).toBe(401);
  });

  it('[review S3 K-5, fixed] a member restricted to projects who holds keys:manage sees and revokes only their own keys', async () => {
    const roleId = crypto.randomUUID();
    await h.t.owner.query(`insert into custom_roles (org_id, id, name, permissions) values ($1, $2, $3, $4)`,
      [acme, roleId, `keymgr-${uniq()}`, ['org:read', 'projects:read', 'keys:own', 'keys:manage']]);
    const id = crypto.randomUUID();
    const email = `keymgr-${uniq()}@example.test`;
    await h.t.owner.query('insert into users (id, email, name) values ($1, $2, $3)', [id, email, 'restricted key manager']);
    await h.t.owner.query(`insert into memberships (org_id, user_id, role, custom_role_id, restricted) values ($1, $2, 'custom', $3, true)`, [acme, id, roleId]);
    const projectA = h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id as string;
    await h.t.owner.query('insert into project_access (org_id, project_id, user_id) values ($1, $2, $3)', [acme, projectA, id]);
    const adminKey = await createKey(admin, acme, { name: `admin-${uniq()}`, kind: 'secret', permissions: ['projects:read'] });
    const restricted = client(h, await h.cookieFor(email));
    const own = await createKey(restricted, acme, { name: `mine-${uniq()}`, kind: 'secret', permissions: ['projects:read'] });
    const listed = (await restricted.call('GET', `/api/orgs/${acme}/api-keys`)).json<{ keys: KeyView[] }>().keys;
    expect(listed.map((k) => k.id)).toEqual([own.key.id]);
    expect((await restricted.call('DELETE', `/api/orgs/${acme}/api-keys/${adminKey.key.id}`)).statusCode).toBe(404);
    expect((await restricted.call('DELETE', `/api/orgs/${acme}/api-keys/${own.key.id}`)).statusCode).toBe(204);
  });

  it('[review S3 K-4, fixed] one member holds at most 25 active keys, under the org’s 500', async () => {
    const m = await passwordUser(h, acme, 'member');
    const member = client(h, await h.cookieFor(m.email));
    for (let i = 0; i < 25; i++) await createKey(member, acme, { name: `k${i}`, kind: 'secret', permissions: ['projects:read'] });
    const over = await member.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'k25', kind: 'secret', permissions: ['projects:read'] });
    expect(over.statusCode).toBe(409);
    // Someone else still creates theirs.
    await createKey(admin, acme, { name: `other-${uniq()}`, kind: 'secret', permissions: ['projects:read'] });
  });

  it('[SOUND] scopes never exceed the creator, the kind or the binding: catalogue, custom role, restricted and foreign projects, expiry edges', async () => {
    const member = client(h, await h.cookieFor(h.user('acme', 'member').email));
    const restricted = client(h, await h.cookieFor(h.user('acme', 'restricted_member').email));
    const globexProject = h.demo.orgs.find((o) => o.slug === 'globex')?.projects[0]?.id as string;
    const acmeProjects = h.demo.orgs.find((o) => o.slug === 'acme')?.projects.map((p) => p.id) as string[];
    const now = h.clock.now().getTime();
    const refusals: [Client, Json, number][] = [
      [member, { name: 'x', kind: 'secret', permissions: ['audit:read'] }, 403],
      [member, { name: 'x', kind: 'secret', permissions: ['keys:own'] }, 400],
      [admin, { name: 'x', kind: 'secret', permissions: ['webhooks:manage'] }, 400],
      [admin, { name: 'x', kind: 'publishable', permissions: ['members:read'] }, 400],
      [admin, { name: 'x', kind: 'secret', permissions: ['projects:read'], projectId: globexProject }, 404],
      [restricted, { name: 'x', kind: 'secret', permissions: ['projects:read'], projectId: acmeProjects[1] }, 404],
      [admin, { name: 'x', kind: 'secret', permissions: ['projects:read'], expiresAt: new Date(now + 60_000).toISOString() }, 400],
      [admin, { name: 'x', kind: 'secret', permissions: ['projects:read'], expiresAt: new Date(now + 731 * 86_400_000).toISOString() }, 400],
      [admin, { name: 'x', kind: 'sk', permissions: ['projects:read'] }, 400],
    ];
    for (const [who, body, status] of refusals) {
      const res = await who.call('POST', `/api/orgs/${acme}/api-keys`, body);
      expect(res.statusCode, JSON.stringify(body)).toBe(status);
    }
    // A custom role narrower than the member role: its holder's key gets no more.
    const role = await owner.call('POST', `/api/orgs/${acme}/roles`, { name: `s3 keys ${uniq()}`, permissions: ['org:read', 'projects:read', 'keys:own'] });
    expect(role.statusCode, role.body).toBe(201);
    const u = await passwordUser(h);
    await h.t.owner.query("insert into memberships (org_id, user_id, role, custom_role_id) values ($1, $2, 'custom', $3)", [acme, u.id, role.json<{ id: string }>().id]);
    const custom = client(h, await h.cookieFor(u.email));
    expect((await custom.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: ['assets:read'] })).json<Problem>().code).toBe('privilege_escalation');
    const { token } = await createKey(custom, acme, { name: 'custom', kind: 'secret', permissions: ['org:read', 'projects:read'] });
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, token)).json<{ permissions: string[] }>().permissions).toEqual(['org:read', 'projects:read']);
    // The role loses projects:read: so does the key, on its next request.
    expect((await owner.call('PATCH', `/api/orgs/${acme}/roles/${role.json<{ id: string }>().id}`, { permissions: ['org:read', 'keys:own'] })).statusCode).toBe(200);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, token)).statusCode).toBe(403);
    // The same token with the other prefix fails the checksum; the key never answers for another org.
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/key`, token.replace('pal_sk_', 'pal_pk_'))).statusCode).toBe(401);
    expect((await bearer(h, 'GET', `/v1/orgs/${globex}/key`, token)).statusCode).toBe(401);
  });

  it('[SOUND] the key and console contexts stay apart under path tricks, methods and ambient cookies', async () => {
    const { token } = await createKey(admin, acme, { name: 'paths', kind: 'secret', permissions: ['org:read', 'projects:read', 'projects:create'] });
    const tricks = [
      `//v1/orgs/${acme}/projects`, `/V1/orgs/${acme}/projects`, `/v1/orgs/${acme}/projects/`, `/v1%2Forgs/${acme}/projects`,
      `/v1/orgs/${acme}/../../api/orgs/${acme}/projects`, `/v1/orgs/${acme}/%2e%2e/%2e%2e/api/orgs/${acme}/projects`,
      `/api/orgs/${acme}/projects`, `/api/orgs/${acme}/../../v1/orgs/${acme}/projects`, `/v1/orgs/${acme}/settings`, `/v1/orgs/${acme}/api-keys`,
      `/v1/orgs/${acme}/webhooks`,
    ];
    for (const url of tricks) {
      const res = await bearer(h, 'GET', url, token);
      expect([401, 404], `${url} -> ${res.statusCode}`).toContain(res.statusCode);
    }
    expect((await bearer(h, 'HEAD', `/v1/orgs/${acme}/projects`, token)).statusCode).toBe(404);
    // A cross-site form or fetch with the console cookie and no key: nothing is read, nothing is written.
    const count = async () => (await h.t.owner.query<{ n: number }>('select count(*)::int as n from projects where org_id = $1', [acme]))[0]?.n;
    const before = await count();
    const ownerCookie = await h.cookieFor(h.user('acme', 'owner').email);
    for (const origin of ['https://evil.example', 'null', ORIGIN]) {
      const res = await h.built.app.inject({ method: 'POST', url: `/v1/orgs/${acme}/projects`, headers: { cookie: ownerCookie, origin }, payload: { name: 'csrf' } });
      expect(res.statusCode, origin).toBe(401);
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    }
    // And a key on a console mutation from another site: refused before anything runs.
    const res = await bearer(h, 'POST', `/api/orgs/${acme}/projects`, token, { headers: { origin: 'https://evil.example' }, payload: { name: 'csrf' } });
    expect(res.statusCode).toBe(403);
    expect(await count()).toBe(before);
  });

  it('[SOUND] a publishable key answers only to an exact registered Origin: no null, no Referer alone, no other scheme, port or name', async () => {
    expect((await owner.call('PATCH', `/api/orgs/${acme}/settings`, { browserOrigins: ['null'] })).statusCode).toBe(400);
    expect((await owner.call('PATCH', `/api/orgs/${acme}/settings`, { browserOrigins: ['https://shop.example'] })).statusCode).toBe(200);
    const { token } = await createKey(admin, acme, { name: 'storefront', kind: 'publishable', permissions: ['projects:read'] });
    const url = `/v1/orgs/${acme}/projects`;
    const probes: Record<string, string>[] = [
      { origin: 'null' }, { referer: 'https://shop.example/checkout' }, { origin: 'http://shop.example' }, { origin: 'https://shop.example:8443' },
      { origin: 'https://shop.example.' }, { origin: 'https://shop.example.evil.example' }, { origin: 'https://shop.example/' }, {},
    ];
    for (const headers of probes) {
      const res = await bearer(h, 'GET', url, token, { headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(403);
      expect(res.json<Problem>().code).toBe('origin_not_allowed');
    }
    expect((await bearer(h, 'GET', url, token, { headers: { origin: 'https://shop.example' } })).statusCode).toBe(200);
  });

  it('[review S3 K-6, fixed] deleting a project revokes the keys bound to it, audited, and keeps their rows', async () => {
    const project = (await admin.call('POST', `/api/orgs/${acme}/projects`, { name: `doomed-${uniq()}` })).json<{ id: string }>().id;
    const bound = await createKey(admin, acme, { name: `bound-${uniq()}`, kind: 'secret', permissions: ['projects:read', 'assets:read'], projectId: project });
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects/${project}/assets`, bound.token)).statusCode).toBe(200);
    expect((await admin.call('DELETE', `/api/orgs/${acme}/projects/${project}`)).statusCode).toBe(204);
    expect((await bearer(h, 'GET', `/v1/orgs/${acme}/projects`, bound.token)).statusCode).toBe(401);
    const listed = (await admin.call('GET', `/api/orgs/${acme}/api-keys`)).json<{ keys: (KeyView & { status: string; projectId: string })[] }>().keys;
    expect(listed.find((k) => k.id === bound.key.id)).toMatchObject({ status: 'revoked', projectId: project });
    const events = await h.t.owner.query<{ details: { reason?: string } }>(
      "select details from audit_events where org_id = $1 and action = 'api_key.revoked' and target_id = $2", [acme, bound.key.id],
    );
    expect(events.map((e) => e.details.reason)).toEqual(['project_deleted']);
  });

  // -------------------------------------------------------------------------------------------
  // Outbound webhooks
  // -------------------------------------------------------------------------------------------

  it('[review S3 W-0, fixed] a claim takes far more than its batch (the LIMIT \u2026 FOR UPDATE SKIP LOCKED subquery is rescanned per row of a nested-loop semi-join): the batch no longer fits its 60 s lease, and a second worker sends the rest again', async () => {
    const t = await seedEndpoint(h, `s3-claim-${uniq()}`);
    const due = new Date(h.clock.now().getTime() - 60_000).toISOString();
    await h.t.owner.query(
      `insert into webhook_deliveries (org_id, id, endpoint_id, message_id, event_type, payload, status, attempts, next_attempt_at, created_at)
       select $1, gen_random_uuid(), $2, 'msg_claim_' || g, 'asset.created', '{}', 'pending', 0, $3, $3 from generate_series(1, 40) g`,
      [t.orgId, t.endpointId, due],
    );
    await h.t.owner.query('insert into webhook_due (org_id, due_at) values ($1, $2)', [t.orgId, due]);
    const leased = async () =>
      (await h.t.owner.query<{ n: number }>("select count(*)::int as n from webhook_deliveries where org_id = $1 and status = 'pending' and lease_until is not null", [t.orgId]))[0]?.n ?? 0;
    const claims: number[] = [];
    const inner = recordingTransport();
    const transport: WebhookTransport = {
      async send(url, headers, body) {
        claims.push(await leased());
        return inner.send(url, headers, body);
      },
    };
    // concurrency 1: the worker's batch is 4 (what it can send within a lease at the transport's deadline).
    await workerFor(h, transport, 1).tick();
    expect(Math.max(...claims), 'deliveries leased at once by one claim (batch 4)').toBeLessThanOrEqual(4);
  });

  it('[review S3 W-3, fixed] deliveries left pending on a disabled endpoint block every other endpoint of the org: the claim picks the oldest due rows, then drops them for their endpoint', async () => {
    const { orgId, cookie } = await freshOrg(h);
    const o = client(h, cookie);
    const add = async (url: string) => {
      const res = await o.call('POST', `/api/orgs/${orgId}/webhooks`, { url, events: ['project.created'] });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ endpoint: { id: string } }>().endpoint.id;
    };
    const oldUrl = `https://old.example.com/${uniq()}`;
    const newUrl = `https://new.example.com/${uniq()}`;
    const old = await add(oldUrl);
    for (let i = 0; i < 5; i++) expect((await o.call('POST', `/api/orgs/${orgId}/projects`, { name: `before ${i}` })).statusCode).toBe(201);
    // The old receiver is retired (switched off, its backlog kept); a new one takes over.
    expect((await o.call('PATCH', `/api/orgs/${orgId}/webhooks/${old}`, { enabled: false })).statusCode).toBe(200);
    h.clock.advance(1000);
    await add(newUrl);
    expect((await o.call('POST', `/api/orgs/${orgId}/projects`, { name: 'after' })).statusCode).toBe(201);
    const transport = recordingTransport();
    await workerFor(h, transport, 1).drain();
    expect(transport.sent.filter((s) => s.url === oldUrl)).toHaveLength(0);
    expect(transport.sent.filter((s) => s.url === newUrl), 'deliveries to the enabled endpoint').toHaveLength(1);
  });

  it('[review S3 W-1, fixed] one org\u2019s backlog holds the worker until it is drained: every other org\u2019s deliveries wait behind a tenant that floods its endpoints', async () => {
    const t0 = h.clock.now().getTime();
    const at = (s: number) => new Date(t0 + s * 1000).toISOString();
    const insert = `insert into webhook_deliveries (org_id, id, endpoint_id, message_id, event_type, payload, status, attempts, next_attempt_at, created_at)
                    select $1, gen_random_uuid(), $2, $3 || g, 'asset.created', '{}', 'pending', 0, $4, $4 from generate_series(1, $5::int) g`;
    // Twenty noisy orgs (an org is free to create), each with three batches due.
    const noisy = await Promise.all(Array.from({ length: 20 }, (_, i) => seedEndpoint(h, `s3-noisy-${i}-${uniq()}`)));
    for (const n of noisy) {
      await h.t.owner.query(insert, [n.orgId, n.endpointId, 'msg_noisy_', at(-60), 12]);
      await h.t.owner.query('insert into webhook_due (org_id, due_at) values ($1, $2)', [n.orgId, at(-60)]);
    }
    // A quiet org with one event, queued after the flood began.
    const quiet = await seedEndpoint(h, `s3-quiet-${uniq()}`);
    await h.t.owner.query(insert, [quiet.orgId, quiet.endpointId, 'msg_quiet_', at(-30), 1]);
    await h.t.owner.query('insert into webhook_due (org_id, due_at) values ($1, $2)', [quiet.orgId, at(-30)]);

    const transport = recordingTransport();
    // concurrency 1: batches of 4, sent one after another, so the order is the worker's.
    expect(await workerFor(h, transport, 1).drain()).toBe(20 * 12 + 1);
    const waitedBehind = transport.sent.findIndex((s) => s.id === 'msg_quiet_1');
    // Fair: at most one batch of each noisy org per pass before the quiet org gets its turn.
    expect(waitedBehind, 'deliveries of other orgs sent before the quiet org\u2019s one event').toBeLessThan(2 * 20 * 4);
  });

  it('[review S3 W-2, fixed] re-enabling an endpoint leaves the deliveries it had pending stranded until some other event marks the org due', async () => {
    const { orgId, cookie } = await freshOrg(h);
    const o = client(h, cookie);
    const url = `https://hooks.example.com/${uniq()}`;
    const created = await o.call('POST', `/api/orgs/${orgId}/webhooks`, { url, events: ['project.created'] });
    expect(created.statusCode, created.body).toBe(201);
    const endpointId = created.json<{ endpoint: { id: string } }>().endpoint.id;
    expect((await o.call('POST', `/api/orgs/${orgId}/projects`, { name: 'queued' })).statusCode).toBe(201);
    // Switched off before the worker came by: the pass finds nothing to send and unlists the org.
    expect((await o.call('PATCH', `/api/orgs/${orgId}/webhooks/${endpointId}`, { enabled: false })).statusCode).toBe(200);
    const transport = recordingTransport();
    const worker = workerFor(h, transport);
    await worker.drain();
    expect(transport.sent.filter((s) => s.url === url)).toHaveLength(0);
    // Back on: the pending event is due, and goes out.
    expect((await o.call('PATCH', `/api/orgs/${orgId}/webhooks/${endpointId}`, { enabled: true })).statusCode).toBe(200);
    await worker.drain();
    expect(transport.sent.filter((s) => s.url === url), 'deliveries sent after re-enabling').toHaveLength(1);
    const log = (await o.call('GET', `/api/orgs/${orgId}/webhooks/${endpointId}/deliveries`)).json<{ deliveries: DeliveryView[] }>().deliveries;
    expect(log.map((d) => d.status)).toEqual(['succeeded']);
  });

  // [review S3 W-4, open, in the closing note and docs/architecture.md] orgs claimed in one pass are served one
  // after another, each batch waiting for its slowest receiver (10 s deadline): twenty orgs whose receivers stall
  // delay a quiet org by minutes per pass. Fix: share the lanes across the orgs of a pass.
  // [review S3 W-5, fixed] destinations are resolved with a c-ares dns.Resolver (own timeout, no libuv threadpool),
  // so slow authoritative servers cannot stall argon2 and other lookups: see defaultResolver in
  // src/domains/webhooks/transport.ts; its localhost path is exercised by transport.test.ts.

  it('[SOUND] a delivery is reachable only through its own endpoint and org: no cross-endpoint or cross-org redelivery or log', async () => {
    const globexAdmin = client(h, await h.cookieFor(h.user('globex', 'admin').email));
    const add = async (c: Client, org: string) => {
      const res = await c.call('POST', `/api/orgs/${org}/webhooks`, { url: `https://hooks.example.com/${uniq()}`, events: ['project.created'] });
      expect(res.statusCode, res.body).toBe(201);
      return res.json<{ endpoint: { id: string } }>().endpoint.id;
    };
    const a1 = await add(admin, acme);
    const a2 = await add(admin, acme);
    const g1 = await add(globexAdmin, globex);
    expect((await admin.call('POST', `/api/orgs/${acme}/projects`, { name: `s3 ${uniq()}` })).statusCode).toBe(201);
    expect((await globexAdmin.call('POST', `/api/orgs/${globex}/projects`, { name: `s3 ${uniq()}` })).statusCode).toBe(201);
    await workerFor(h, recordingTransport()).drain();
    const logOf = async (c: Client, org: string, ep: string) =>
      (await c.call('GET', `/api/orgs/${org}/webhooks/${ep}/deliveries`)).json<{ deliveries: DeliveryView[] }>().deliveries;
    const [d1] = await logOf(admin, acme, a1);
    const [dg] = await logOf(globexAdmin, globex, g1);
    expect(d1?.status).toBe('succeeded');
    expect(dg?.status).toBe('succeeded');
    const redeliver = (c: Client, org: string, ep: string, d: string) => c.call('POST', `/api/orgs/${org}/webhooks/${ep}/deliveries/${d}/redeliver`);
    expect((await redeliver(admin, acme, a2, d1?.id as string)).statusCode).toBe(404); // another endpoint's delivery
    expect((await redeliver(admin, acme, a1, dg?.id as string)).statusCode).toBe(404); // another org's delivery
    expect((await redeliver(admin, globex, g1, dg?.id as string)).statusCode).toBe(404); // another org's path
    expect((await admin.call('GET', `/api/orgs/${acme}/webhooks/${g1}/deliveries`)).statusCode).toBe(404);
    expect((await logOf(admin, acme, a2)).map((d) => d.id)).not.toContain(d1?.id);
    const pending = await h.t.owner.query<{ n: number }>("select count(*)::int as n from webhook_deliveries where status = 'pending'");
    expect(pending[0]?.n).toBe(0);
  });

  // -------------------------------------------------------------------------------------------
  // Inbound webhooks
  // -------------------------------------------------------------------------------------------

  it('[SOUND] inbound: a captured delivery is not replayed under a new id, at another org\u2019s path or after the window; one event applies once', async () => {
    const secret = `whsec_${Buffer.alloc(32, 0x33).toString('base64')}`;
    const made = await admin.call('POST', `/api/orgs/${acme}/inbound-sources`, { name: `s3 ${uniq()}`, provider: 'standard', secret });
    expect(made.statusCode, made.body).toBe(201);
    const { id: sourceId, receivePath } = made.json<{ id: string; receivePath: string }>();
    const body = JSON.stringify({ type: 'invoice.paid', amount: 1 });
    const signed = (id: string, when: Date, payload = body) => ({
      'content-type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(Math.floor(when.getTime() / 1000)),
      'webhook-signature': new Webhook(secret).sign(id, when, payload),
    });
    const post = (path: string, headers: Record<string, string>, payload = body) => h.built.app.inject({ method: 'POST', url: path, headers, payload });
    const now = h.clock.now();
    const headers = signed('evt_s3_1', now);
    expect((await post(receivePath, headers)).json()).toEqual({ received: true, duplicate: false });
    expect((await post(receivePath, headers)).json()).toEqual({ received: true, duplicate: true });
    const refusals = [
      await post(receivePath, { ...headers, 'webhook-id': 'evt_s3_2' }), // the old signature under a new id
      await post(`/api/inbound/${globex}/${sourceId}`, headers), // another org's path for the same source id
      await post(receivePath, signed('evt_s3_3', new Date(now.getTime() - 301_000))), // outside the window
      await post(receivePath, { ...headers, 'webhook-signature': `${headers['webhook-signature']} v1,${'A'.repeat(44)}` }, `${body} `), // body changed
    ];
    for (const r of refusals) {
      expect(r.statusCode).toBe(400);
      expect({ ...r.json<Problem>(), requestId: 'x' }).toEqual({ ...refusals[0]?.json<Problem>(), requestId: 'x' });
    }
    const applied = await h.t.owner.query<{ n: number }>('select count(*)::int as n from inbound_events where source_id = $1', [sourceId]);
    expect(applied[0]?.n).toBe(1);
  });

  it('[SOUND] tokens and signing secrets appear once, in their create answer: not in logs, the audit trail, webhook payloads or the OpenAPI document', async () => {
    const { token } = await createKey(admin, acme, { name: 'secret-scan', kind: 'secret', permissions: ['projects:read'] });
    const ep = await admin.call('POST', `/api/orgs/${acme}/webhooks`, { url: `https://hooks.example.com/${uniq()}`, events: ['*'] });
    const whsec = ep.json<{ secret: string }>().secret;
    const rotated = (await admin.call('POST', `/api/orgs/${acme}/webhooks/${ep.json<{ endpoint: { id: string } }>().endpoint.id}/rotate-secret`)).json<{ secret: string }>().secret;
    const inboundSecret = `whsec_${Buffer.alloc(32, 0x44).toString('base64')}`;
    expect((await admin.call('POST', `/api/orgs/${acme}/inbound-sources`, { name: `scan ${uniq()}`, provider: 'standard', secret: inboundSecret })).statusCode).toBe(201);
    // A refused use of each, too.
    await bearer(h, 'GET', `/v1/orgs/${globex}/projects`, token);
    expect((await admin.call('POST', `/api/orgs/${acme}/api-keys`, { name: 'x', kind: 'secret', permissions: ['projects:read'], expiresAt: token })).statusCode).toBe(400);
    await admin.call('POST', `/api/orgs/${acme}/projects`, { name: `scan ${uniq()}` });
    const trail = (await h.t.owner.query<{ j: string }>('select to_jsonb(a)::text as j from audit_events a')).map((r) => r.j).join('\n');
    const payloads = (await h.t.owner.query<{ payload: string }>('select payload from webhook_deliveries')).map((r) => r.payload).join('\n');
    const openapi = (await h.built.app.inject({ method: 'GET', url: '/openapi.json' })).body;
    for (const s of [token.slice(7), whsec.slice(6), rotated.slice(6), inboundSecret.slice(6)]) {
      for (const [where, text] of [['logs', h.logs.join('')], ['audit', trail], ['payloads', payloads], ['openapi', openapi]] as const) {
        expect(text.includes(s), `${s.slice(0, 6)}… in ${where}`).toBe(false);
      }
    }
  });
});

describe.each(ENGINES)('review s3 — refusals and the per-actor rate limit on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine, { config: { RATE_LIMITS: RELAXED_LIMITS.replace('authenticated=100000/60', 'authenticated=5/60').replace('probe=100000/60', 'probe=5/60') } });
  });
  afterAll(async () => h?.close());

  it('[review S3 K-2, fixed] refused requests skip the per-actor limit, and each refusal is an audit write: a publishable key (public by design) lets anyone append to an org\u2019s audit trail without limit', async () => {
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

  it('[review S3 K-3, fixed] an address that keeps failing key authentication is refused before the lookup', async () => {
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

  it('[review S3 K-7, fixed] a copied publishable key spends its copier’s budget (per key and address), not the visitors’', async () => {
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

  it('[review S3 K-4, fixed] a member’s secret keys share one budget: more keys do not buy more requests', async () => {
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
