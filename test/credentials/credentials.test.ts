/**
 * Integration credentials: written through the API (owners and admins, after a step-up), never
 * read back through it, opened in process by host code that names them (services.vault), every
 * use counted, audited and logged; a rotation history and a paged use log readable by those
 * holding credentials:read (owners, admins, and a custom role granting it: `reader` here). On
 * both engines.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { newId } from '../../src/crypto/index.js';
import { exec } from '../../src/db/database.js';
import { AppError } from '../../src/kernel/errors.js';
import type { CredentialView, RotationView, UseView } from '../../src/domains/credentials/index.js';
import { insertUserSql } from '../../src/domains/identity/people.js';
import { createTestApp, type Problem, type TestApp } from '../support/app.js';
import { client, type Client } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { audit } from '../support/evidence.js';

const VALUE = 'CANARY-vault-psa-token-2b9e71c4d05a';
const ROTATED = 'CANARY-vault-rotated-8f13a6e0c2d7';

describe.each(ENGINES)('integration credentials on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let owner: Client;
  let admin: Client;
  let viewer: Client;
  let member: Client;
  /** A member whose custom role grants credentials:read only (with org:read). */
  let reader: Client;
  const answers: string[] = [];
  const base = (orgId: string) => `/api/orgs/${orgId}/integrations/credentials`;

  async function send(by: Client, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object): Promise<LightMyRequestResponse> {
    const res = await by.call(method, url, payload);
    answers.push(res.body);
    return res;
  }

  async function create(by: Client, orgId: string, name: string, secret = VALUE): Promise<CredentialView> {
    const res = await send(by, 'POST', base(orgId), { name, kind: 'api_token', description: `for ${name}`, secret });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<CredentialView>();
  }

  const rowsOf = (name: string) =>
    h.t.owner.query<{ secret_sealed: string; deleted_at: Date | null }>('select secret_sealed, deleted_at from integration_credentials where name = $1', [name]);

  function expectProblem(res: LightMyRequestResponse, status: number, code: string): void {
    expect(res.statusCode, res.body).toBe(status);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(res.json<Problem>().code).toBe(code);
  }

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    owner = client(h, await h.cookieFor(h.user('acme', 'owner').email));
    admin = client(h, await h.cookieFor(h.user('acme', 'admin').email));
    viewer = client(h, await h.cookieFor(h.user('acme', 'viewer').email));
    member = client(h, await h.cookieFor(h.user('acme', 'member').email));
    const role = await owner.call('POST', `/api/orgs/${acme}/roles`, { name: 'Integration auditor', permissions: ['org:read', 'credentials:read'] });
    expect(role.statusCode, role.body).toBe(201);
    const userId = newId();
    const email = `reader-${userId.slice(0, 8)}@acme.test`;
    await h.t.db.withTenant({ orgId: acme, projectIds: null }, async (tx) => {
      await (await insertUserSql(h.built.services.sealer, tx, userId, { email, name: 'Integration auditor' })).execute(tx);
      await exec(tx, sql`insert into memberships (org_id, user_id, role, custom_role_id) values (${acme}, ${userId}, 'custom', ${role.json<{ id: string }>().id})`);
    });
    reader = client(h, await h.cookieFor(email));
  });
  afterAll(async () => h?.close());

  it('creates a credential, lists its metadata only, seals the value bound to its row, and audits without it', async () => {
    const c = await create(owner, acme, 'connectwise');
    expect(c).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/), name: 'connectwise', kind: 'api_token', description: 'for connectwise', version: 1,
      createdBy: expect.stringMatching(/^[0-9a-f-]{36}$/), createdAt: h.clock.now().toISOString(), updatedAt: h.clock.now().toISOString(),
      lastUsedAt: null, lastUsedBy: null, useCount: 0,
    });
    const list = await send(reader, 'GET', base(acme));
    expect(list.statusCode).toBe(200);
    expect(list.json<{ credentials: CredentialView[] }>().credentials.map((x) => x.name)).toContain('connectwise');
    const [row] = await rowsOf('connectwise');
    expect(row?.secret_sealed).toMatch(/^v1\./);
    expect(row?.secret_sealed).not.toContain(VALUE);
    // Bound to its row: the sealed value copied onto another credential does not open there.
    const other = await create(owner, acme, 'copy-target', 'CANARY-other-value-55aa');
    await h.t.owner.query('update integration_credentials set secret_sealed = $1 where id = $2', [row?.secret_sealed, other.id]);
    await expect(h.built.services.vault.use(acme, 'copy-target', { by: 'test' }, async () => 'opened')).rejects.toThrow();
    expect(Number((await h.t.owner.query<{ use_count: string }>('select use_count from integration_credentials where id = $1', [other.id]))[0]?.use_count)).toBe(0);
    const events = await audit(h, acme, 'credential.created', c.id);
    expect(events.map((e) => e.details)).toEqual([{ name: 'connectwise', kind: 'api_token' }]);
  });

  it('opens the right value in process, counts and audits each use, and logs what the host reported', async () => {
    await create(owner, acme, 'n-able', 'CANARY-nable-other-4d1c');
    const vault = h.built.services.vault;
    const got = await vault.use(acme, 'connectwise', { by: 'psa-sync' }, async (secret, report) => {
      report.note(`synced 12 tickets with ${secret}`);
      return secret;
    });
    expect(got).toBe(VALUE);
    expect(await vault.use(acme, 'n-able', { by: 'rmm-sync' }, async (s) => s)).toBe('CANARY-nable-other-4d1c');
    await expect(vault.use(acme, 'connectwise', { by: 'psa-sync:tenant-7' }, async () => { throw new TypeError(`refused ${VALUE}`); })).rejects.toThrow(TypeError);
    await vault.use(acme, 'connectwise', { by: 'psa-sync' }, async (_s, report) => report.fail('401 from the PSA'));

    const c = (await send(reader, 'GET', base(acme))).json<{ credentials: CredentialView[] }>().credentials.find((x) => x.name === 'connectwise');
    expect(c).toMatchObject({ useCount: 3, lastUsedBy: 'psa-sync', lastUsedAt: h.clock.now().toISOString() });
    const uses = await send(reader, 'GET', `${base(acme)}/${c?.id}/uses`);
    expect(uses.statusCode, uses.body).toBe(200);
    expect(uses.json<{ uses: UseView[] }>().uses.map((u) => [u.use, u.by, u.status, u.message])).toEqual([
      [3, 'psa-sync', 'failed', '401 from the PSA'],
      [2, 'psa-sync:tenant-7', 'failed', 'failed: TypeError'],
      [1, 'psa-sync', 'ok', 'synced 12 tickets with [redacted]'],
    ]);
    const used = await audit(h, acme, 'credential.used', c?.id);
    expect(used.map((e) => [e.actor_id, e.details])).toEqual([
      ['psa-sync', { name: 'connectwise', by: 'psa-sync', use: 1 }],
      ['psa-sync:tenant-7', { name: 'connectwise', by: 'psa-sync:tenant-7', use: 2 }],
      ['psa-sync', { name: 'connectwise', by: 'psa-sync', use: 3 }],
    ]);
  });

  it('numbers concurrent uses one by one: none lost, none counted twice', async () => {
    await create(owner, acme, 'busy', 'CANARY-busy-value-77c1');
    const got = await Promise.all(Array.from({ length: 8 }, (_, i) => h.built.services.vault.use(acme, 'busy', { by: `worker-${i}` }, async (s) => s)));
    expect(new Set(got)).toEqual(new Set(['CANARY-busy-value-77c1']));
    const c = (await send(reader, 'GET', base(acme))).json<{ credentials: CredentialView[] }>().credentials.find((x) => x.name === 'busy');
    expect(c?.useCount).toBe(8);
    const log = (await send(reader, 'GET', `${base(acme)}/${c?.id}/uses?limit=100`)).json<{ uses: UseView[] }>().uses;
    expect(log.map((u) => u.use)).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    expect(new Set(log.map((u) => u.by)).size).toBe(8);
  });

  it('refuses host calls with a bad name, caller or org, and another org\u2019s credential, with clear errors', async () => {
    const vault = h.built.services.vault;
    const never = async () => { throw new Error('the callback must not run'); };
    for (const [org, name, by] of [[acme, 'Bad Name', 'x'], [acme, 'connectwise', 'Not OK'], [acme, '../etc', 'x'], [acme, 'a'.repeat(65), 'x']] as const) {
      await expect(vault.use(org, name, { by }, never)).rejects.toMatchObject({ code: 'validation_failed' });
    }
    await expect(vault.use('not-a-uuid', 'connectwise', { by: 'x' }, never)).rejects.toMatchObject({ code: 'not_found' });
    // Globex cannot open acme's credential by name: RLS binds the lookup to the org named.
    await expect(vault.use(globex, 'connectwise', { by: 'x' }, never)).rejects.toBeInstanceOf(AppError);
    await expect(vault.use(globex, 'connectwise', { by: 'x' }, never)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('replaces the value with a reason, keeps the rotation history, and opens the new value', async () => {
    const c = (await send(reader, 'GET', base(acme))).json<{ credentials: CredentialView[] }>().credentials.find((x) => x.name === 'connectwise');
    const url = `${base(acme)}/${c?.id}`;
    expectProblem(await send(admin, 'POST', `${url}/replace`, { secret: ROTATED }), 400, 'validation_failed');
    h.clock.advance(60_000);
    const replaced = await send(admin, 'POST', `${url}/replace`, { secret: ROTATED, reason: 'quarterly rotation' });
    expect(replaced.statusCode, replaced.body).toBe(200);
    expect(replaced.json<CredentialView>()).toMatchObject({ version: 2, updatedAt: h.clock.now().toISOString(), useCount: 3 });
    expect(await h.built.services.vault.use(acme, 'connectwise', { by: 'psa-sync' }, async (s) => s)).toBe(ROTATED);
    const history = await send(reader, 'GET', `${url}/rotations`);
    expect(history.statusCode).toBe(200);
    expect(history.json<{ rotations: RotationView[] }>().rotations.map((r) => [r.version, r.event, r.reason])).toEqual([
      [2, 'replaced', 'quarterly rotation'],
      [1, 'created', ''],
    ]);
    const [ev] = await audit(h, acme, 'credential.replaced', c?.id);
    expect(ev?.details).toEqual({ name: 'connectwise', version: 2, reason: 'quarterly rotation' });
  });

  it('pages the use log newest first', async () => {
    const c = await create(owner, acme, 'paged');
    for (let i = 0; i < 7; i++) await h.built.services.vault.use(acme, 'paged', { by: 'pager' }, async (_s, r) => r.note(`run ${i + 1}`));
    const seen: number[] = [];
    let before: number | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const q: string = before === null ? '?limit=3' : `?limit=3&before=${before}`;
      const res = await send(reader, 'GET', `${base(acme)}/${c.id}/uses${q}`);
      expect(res.statusCode, res.body).toBe(200);
      const page = res.json<{ uses: UseView[]; nextBefore: number | null }>();
      seen.push(...page.uses.map((u) => u.use));
      before = page.nextBefore;
      if (before === null) break;
    }
    expect(seen).toEqual([7, 6, 5, 4, 3, 2, 1]);
    // The largest cursor is an empty page, not an overflow.
    const far = await send(reader, 'GET', `${base(acme)}/${c.id}/rotations?before=${Number.MAX_SAFE_INTEGER}`);
    expect([far.statusCode, far.json<{ rotations: unknown[] }>().rotations.length]).toEqual([200, 1]);
    for (const q of ['?limit=0', '?limit=101', '?before=0', '?before=x', '?cursor=1', `?before=${2 ** 64}`]) {
      expectProblem(await send(reader, 'GET', `${base(acme)}/${c.id}/uses${q}`), 400, 'validation_failed');
    }
  });

  it('deletes: the value is destroyed, host code gets a clear not_found, the name is free again', async () => {
    const c = await create(owner, acme, 'to-delete');
    const del = await send(admin, 'DELETE', `${base(acme)}/${c.id}`);
    expect(del.statusCode, del.body).toBe(204);
    expect((await rowsOf('to-delete')).map((r) => r.secret_sealed)).toEqual(['']);
    const err = await h.built.services.vault.use(acme, 'to-delete', { by: 'psa-sync' }, async () => 'x').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect(err).toMatchObject({ code: 'not_found', detail: 'the organization has no integration credential named to-delete (never added, or deleted)' });
    expectProblem(await send(admin, 'DELETE', `${base(acme)}/${c.id}`), 404, 'not_found');
    expectProblem(await send(reader, 'GET', `${base(acme)}/${c.id}/uses`), 404, 'not_found');
    expectProblem(await send(admin, 'POST', `${base(acme)}/${c.id}/replace`, { secret: 'CANARY-x-123456', reason: 'r' }), 404, 'not_found');
    await create(owner, acme, 'to-delete', 'CANARY-reborn-7ab3c9');
    expect(await audit(h, acme, 'credential.deleted', c.id)).toHaveLength(1);
  });

  it('refuses a duplicate name, even sent twice at once, with 409 and one row', async () => {
    await create(owner, acme, 'dup');
    expectProblem(await send(owner, 'POST', base(acme), { name: 'dup', kind: 'password', secret: 'CANARY-dup-2-aa11' }), 409, 'conflict');
    const body = { name: 'dup-race', kind: 'password', secret: 'CANARY-dup-race-bb22' };
    const both = await Promise.all([send(owner, 'POST', base(acme), body), send(admin, 'POST', base(acme), body)]);
    expect(both.map((r) => r.statusCode).sort()).toEqual([201, 409]);
    expect(await rowsOf('dup-race')).toHaveLength(1);
    expect(await audit(h, acme, 'credential.created')).toHaveLength((await h.t.owner.query('select 1 from integration_credentials where org_id = $1', [acme])).length);
  });

  it('answers malformed and oversized names, kinds and values with 400 problems, never echoing the value, writing nothing', async () => {
    const before = (await h.t.owner.query('select 1 from integration_credentials')).length;
    const auditBefore = (await h.t.owner.query('select 1 from audit_events')).length;
    const secret = 'CANARY-bad-input-9e0f1a';
    const bad: object[] = [
      { name: 'Upper', kind: 'api_token', secret },
      { name: 'has space', kind: 'api_token', secret },
      { name: '-leading', kind: 'api_token', secret },
      { name: 'trailing.', kind: 'api_token', secret },
      { name: 'a'.repeat(65), kind: 'api_token', secret },
      { name: '<script>', kind: 'api_token', secret },
      { name: 'caf\u00e9', kind: 'api_token', secret },
      { name: '', kind: 'api_token', secret },
      { name: 42, kind: 'api_token', secret },
      { name: 'ok-name', kind: 'ssh_key', secret },
      { name: 'ok-name', kind: 'api_token', secret: '' },
      { name: 'ok-name', kind: 'api_token', secret: '   ' },
      { name: 'ok-name', kind: 'api_token', secret: `${secret}${'x'.repeat(8192)}` },
      { name: 'ok-name', kind: 'api_token', secret: `${secret}${'\u00e9'.repeat(4090)}` },
      { name: 'ok-name', kind: 'api_token', secret: `${secret}\u0000` },
      { name: 'ok-name', kind: 'api_token', secret: 12345678 },
      { name: 'ok-name', kind: 'api_token', secret, description: 'x'.repeat(201) },
      { name: 'ok-name', kind: 'api_token', secret, description: 'line\nbreak' },
      { name: 'ok-name', kind: 'api_token', secret, extra: true },
      { name: 'ok-name', kind: 'api_token' },
    ];
    for (const payload of bad) {
      const res = await send(owner, 'POST', base(acme), payload);
      expect(res.statusCode, JSON.stringify(payload).slice(0, 80)).toBe(400);
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.body).not.toContain(secret);
    }
    const c = (await send(reader, 'GET', base(acme))).json<{ credentials: CredentialView[] }>().credentials[0];
    for (const payload of [{ secret, reason: '' }, { secret: '', reason: 'r' }, { secret, reason: 'x'.repeat(201) }, { secret: 'x'.repeat(8193), reason: 'r' }]) {
      const res = await send(owner, 'POST', `${base(acme)}/${c?.id}/replace`, payload);
      expect(res.statusCode).toBe(400);
      expect(res.body).not.toContain(secret);
    }
    expectProblem(await send(owner, 'GET', `${base(acme)}/not-a-uuid`), 400, 'validation_failed');
    expect((await h.t.owner.query('select 1 from integration_credentials')).length).toBe(before);
    expect((await h.t.owner.query('select 1 from audit_events')).length).toBe(auditBefore);
  });

  it('hides other tenants\u2019 credentials (404) and refuses roles without the permission (403)', async () => {
    const g = await create(client(h, await h.cookieFor(h.user('globex', 'owner').email)), globex, 'globex-psa', 'CANARY-globex-31d0c2');
    for (const [method, suffix, payload] of [
      ['GET', '', undefined], ['GET', '/rotations', undefined], ['GET', '/uses', undefined], ['DELETE', '', undefined],
      ['POST', '/replace', { secret: 'CANARY-hijack-0000', reason: 'x' }],
    ] as const) {
      expectProblem(await send(owner, method, `${base(acme)}/${g.id}${suffix}`, payload), 404, 'not_found');
    }
    // Not a member of globex: the org itself is not found.
    expectProblem(await send(owner, 'GET', base(globex)), 404, 'not_found');
    expect(await h.built.services.vault.use(globex, 'globex-psa', { by: 'x' }, async (s) => s)).toBe('CANARY-globex-31d0c2');

    const c = await create(admin, acme, 'role-check');
    const restricted = client(h, await h.cookieFor(h.user('acme', 'restricted_member').email));
    const projectViewer = client(h, await h.cookieFor(h.user('acme', 'project_viewer').email));
    // The reader may read but not write; the built-in member and viewer roles hold neither permission.
    for (const who of [reader, member, viewer]) {
      if (who !== reader) expectProblem(await send(who, 'GET', base(acme)), 403, 'forbidden');
      expectProblem(await send(who, 'POST', base(acme), { name: 'nope', kind: 'api_token', secret: 'CANARY-nope-1234' }), 403, 'forbidden');
      expectProblem(await send(who, 'POST', `${base(acme)}/${c.id}/replace`, { secret: 'CANARY-nope-1234', reason: 'x' }), 403, 'forbidden');
      expectProblem(await send(who, 'DELETE', `${base(acme)}/${c.id}`), 403, 'forbidden');
    }
    for (const who of [restricted, projectViewer]) expectProblem(await send(who, 'GET', base(acme)), 403, 'forbidden');
    expect(await rowsOf('nope')).toEqual([]);
  });

  it('asks for a fresh step-up before storing or replacing a value', async () => {
    const stale = client(h, await h.cookieFor(h.user('acme', 'owner').email));
    h.clock.advance(11 * 60_000);
    expectProblem(await send(stale, 'POST', base(acme), { name: 'stale', kind: 'api_token', secret: 'CANARY-stale-4e4e' }), 403, 'step_up_required');
    const c = (await send(stale, 'GET', base(acme))).json<{ credentials: CredentialView[] }>().credentials[0];
    expectProblem(await send(stale, 'POST', `${base(acme)}/${c?.id}/replace`, { secret: 'CANARY-stale-4e4e', reason: 'x' }), 403, 'step_up_required');
    expect(await rowsOf('stale')).toEqual([]);
  });

  it('never answered with a value, and no answer was a 5xx', () => {
    expect(answers.length).toBeGreaterThan(40);
    for (const body of answers) {
      for (const v of [VALUE, ROTATED, 'CANARY-nable-other-4d1c', 'CANARY-globex-31d0c2', 'CANARY-reborn-7ab3c9']) expect(body).not.toContain(v);
    }
    expect(h.logs.join('')).not.toContain('CANARY-');
    void newId;
  });
});
