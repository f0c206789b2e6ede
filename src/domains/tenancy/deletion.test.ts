import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring, newId, type DataKeyStore, type WrappedKey } from '../../crypto/index.js';
import { exec } from '../../db/database.js';
import { createTestApp, TEST_KEK, type TestApp } from '../../../test/support/app.js';
import { code, signedIn } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { createDataKeyJob, ORG_SEALED_COLUMNS } from '../keys/index.js';
import type { OrgView } from './responses.js';

const DAY = 86_400_000;

/**
 * Deleting an org: owner only, step-up, the slug typed; at once every member's session stops
 * reaching it and every API key is revoked; it answers only its status and the owner's restore
 * during the grace period; afterwards the data-key job destroys its keys, and the raw rows show
 * that no sealed value of it opens with any key that remains, while its audit chain verifies.
 */
describe.each(ENGINES)('org deletion and crypto-shredding on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  const url = (p = '') => `/api/orgs/${acme}${p}`;
  const owner = () => signedIn(h, h.user('acme', 'owner').email);
  const job = () => createDataKeyJob({ db: h.t.db, clock: h.clock, logger: h.logger, keys: h.built.services.dataKeys, shredder: h.built.services.shredder });
  const actions = async () => (await h.t.owner.query<{ action: string }>(`select action from audit_events where org_id = $1 and action like 'org.%' order by seq`, [acme])).map((r) => r.action);

  /** An API key of the org, made through the API. */
  async function apiKey(): Promise<string> {
    const res = await (await owner()).call('POST', url('/api-keys'), { name: 'ci', kind: 'secret', permissions: ['projects:read'] });
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ token: string }>().token;
  }
  const withKey = (token: string) => h.built.app.inject({ method: 'GET', url: `/v1/orgs/${acme}/projects`, headers: { authorization: `Bearer ${token}` } });

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
  });
  afterAll(async () => h?.close());

  it('is the owner\u2019s, with the slug typed: an admin is refused, a wrong slug changes nothing', async () => {
    const admin = await signedIn(h, h.user('acme', 'admin').email);
    expect((await admin.call('DELETE', url(), { confirm: 'acme' })).statusCode).toBe(403);
    const wrong = await (await owner()).call('DELETE', url(), { confirm: 'ACME' });
    expect(wrong.statusCode).toBe(400);
    expect(code(wrong)).toBe('validation_failed');
    expect((await (await owner()).call('DELETE', `/api/orgs/${h.orgId('globex')}`, { confirm: 'globex' })).statusCode).toBe(404);
    expect((await h.t.owner.query('select purge_after from organizations where org_id = $1', [acme]))[0]).toEqual({ purge_after: null });
  });

  it('ends every session and key of the org at once, leaves only status and restore, and restores within the grace period', async () => {
    const token = await apiKey();
    expect((await withKey(token)).statusCode).toBe(200);
    const before = await owner();
    const member = await signedIn(h, h.user('acme', 'member').email);
    expect((await member.call('GET', url('/projects'))).statusCode).toBe(200);
    const invited = h.user('globex', 'viewer');
    const inv = await before.call('POST', url('/invitations'), { email: invited.email, role: 'member' });
    expect(inv.statusCode, inv.body).toBe(201);
    h.clock.advance(1000);

    const res = await before.call('DELETE', url(), { confirm: 'acme' });
    expect(res.statusCode, res.body).toBe(202);
    const deletion = res.json<NonNullable<OrgView['deletion']>>();
    expect(new Date(deletion.purgeAfter).getTime() - new Date(deletion.requestedAt).getTime()).toBe(30 * DAY);

    // Sessions opened before the deletion, the deleting owner's included, and the key: refused.
    expect(code(await before.call('GET', url()))).toBe('session_expired');
    expect(code(await member.call('GET', url('/projects')))).toBe('session_expired');
    expect((await withKey(token)).statusCode).toBe(401);
    // Signed in again: the status, and a clear refusal for everything else.
    h.clock.advance(1000);
    const again = await owner();
    const got = await again.call('GET', url());
    expect(got.statusCode).toBe(200);
    expect(got.json<OrgView>().deletion).toEqual(deletion);
    const refused = await again.call('GET', url('/members'));
    expect(refused.statusCode).toBe(409);
    expect(refused.json<{ detail: string }>().detail).toContain(`scheduled for deletion on ${deletion.purgeAfter}`);
    expect((await (await signedIn(h, h.user('acme', 'member').email)).call('GET', url('/projects'))).statusCode).toBe(409);
    const me = await again.call('GET', '/api/me');
    expect(me.json<{ orgs: OrgView[] }>().orgs.find((o) => o.id === acme)?.deletion).toEqual(deletion);
    expect(code(await again.call('DELETE', url(), { confirm: 'acme' }))).toBe('conflict');
    // Nobody joins it meanwhile: an invitation sent before is refused (the database refuses the membership).
    const join = await (await signedIn(h, invited.email)).call('POST', '/api/invitations/accept', { token: inv.json<{ token: string }>().token });
    expect(join.statusCode, join.body).toBe(409);
    expect(await h.t.owner.query('select 1 from memberships m where m.org_id = $1 and m.user_id = $2', [acme, await h.userId(invited.email)])).toEqual([]);
    // Restore is the owner's too.
    expect((await (await signedIn(h, h.user('acme', 'admin').email)).call('POST', url('/restore'))).statusCode).toBe(403);

    // From outside an admin IP allowlist (set before, perhaps by a rogue admin) the owner restores too.
    await h.t.owner.query(`update org_settings set admin_ip_allowlist = '{10.0.0.0/8}' where org_id = $1`, [acme]);
    const restored = await again.call('POST', url('/restore'));
    expect(restored.statusCode, restored.body).toBe(200);
    await h.t.owner.query(`update org_settings set admin_ip_allowlist = '{}' where org_id = $1`, [acme]);
    expect(restored.json<OrgView>().deletion).toBeNull();
    expect((await again.call('GET', url('/members'))).statusCode).toBe(200);
    // A revoked key stays revoked: whoever held it may be why the org was deleted.
    expect((await withKey(token)).statusCode).toBe(401);
    expect(code(await again.call('POST', url('/restore')))).toBe('conflict');
    expect(await actions()).toEqual(expect.arrayContaining(['org.deletion_scheduled', 'org.restored']));
  });

  it('after the grace period destroys every data key: no sealed value of the org opens with any key that remains, and its chain verifies', async () => {
    // Sealed values in several registered columns, through the API and directly.
    const o = await owner();
    const hook = await o.call('POST', url('/webhooks'), { url: 'https://hooks.example.com/in', events: ['*'] });
    expect(hook.statusCode, hook.body).toBe(201);
    expect((await o.call('POST', url('/integrations/credentials'), { name: 'psa', kind: 'api_token', secret: 'psa-token-value' })).statusCode).toBe(201);
    const inboundId = newId();
    await h.t.db.withTenant({ orgId: acme }, async (tx) => {
      const id = inboundId;
      const sealed = await h.built.services.sealer.seal(tx, { scope: acme, table: 'inbound_sources', column: 'secret_sealed', row: id }, 'inbound-secret');
      await exec(tx, sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
                         values (${acme}, ${id}, 'standard', 'src', ${sealed}, ${newId()}, ${h.clock.now().toISOString()})`);
    });
    // Keys that remain after the shredding: another org's and a system scope's.
    const globexId = h.orgId('globex');
    await h.t.db.withTenant({ orgId: globexId }, (tx) => h.built.services.sealer.seal(tx, { scope: globexId, table: 't', column: 'c', row: 'r' }, 'globex value'));
    await h.t.db.withSystem('test', (tx) => h.built.services.sealer.seal(tx, { scope: 'mfa', table: 't', column: 'c', row: 'r' }, 'system value'));
    // A rotation leaves a retired key too: both must go.
    expect((await o.call('POST', url('/security/rotate-data-key'))).statusCode).toBe(202);
    h.clock.advance(1000);
    expect((await (await owner()).call('DELETE', url(), { confirm: 'acme' })).statusCode).toBe(202);

    // Nothing in it can be used meanwhile: an inbound event is refused like one for an unknown
    // source, host code gets no credential, an API key cannot be added even by a request authorized
    // before the deletion (the database refuses it), and an SSO sign-in of an existing member still works.
    const inbound = () => h.built.app.inject({ method: 'POST', url: `/api/inbound/${acme}/${inboundId}`, headers: { 'content-type': 'application/json' }, payload: '{}' });
    expect((await inbound()).statusCode).toBe(400);
    await expect(h.built.services.vault.use(acme, 'psa', { by: 'sync' }, (v) => Promise.resolve(v))).rejects.toMatchObject({ code: 'not_found' });
    const ownerId = await h.userId(h.user('acme', 'owner').email);
    await expect(h.t.db.withTenant({ orgId: acme }, (tx) => exec(tx, sql`insert into api_keys (org_id, id, kind, name, token_hash, prefix, last_four, permissions, created_by, creator_joined_at, created_at)
      select ${acme}, ${newId()}, 'secret', 'late', ${newId()}, 'pal_sk_', 'late', '{org:read}', user_id, created_at, now() from memberships where org_id = ${acme} and user_id = ${ownerId}`))).rejects.toMatchObject({ code: '55000' });
    await h.t.db.withTenant({ orgId: acme }, (tx) => exec(tx, sql`insert into memberships (org_id, user_id, role) values (${acme}, ${ownerId}, 'member') on conflict do nothing`));

    // Before the end of the grace period the job leaves the org alone.
    h.clock.advance(29 * DAY);
    await job().drain();
    expect((await h.t.owner.query<{ n: number }>('select count(*)::int as n from org_keys where org_id = $1 and destroyed_at is null', [acme]))[0]?.n).toBe(2);

    h.clock.advance(DAY + 1000);
    const late = await owner();
    expect(code(await late.call('POST', url('/restore')))).toBe('conflict');
    // What a backup taken now holds: every sealed value of the org, raw.
    const backup: { c: (typeof ORG_SEALED_COLUMNS)[number]; id: string; v: string }[] = [];
    for (const c of ORG_SEALED_COLUMNS) {
      const values = await h.t.owner.query<{ id: string; v: string }>(
        `select ${c.row}::text as id, ${c.column} as v from ${c.table} where org_id = $1 and ${c.column} is not null and ${c.column} <> ''`, [acme]);
      backup.push(...values.map((x) => ({ c, ...x })));
    }
    // invitations: the address of the invitation sent above, sealed since migration 037 (main's 1a58a2f left this list as it was).
    expect(new Set(backup.map((b) => b.c.table))).toEqual(new Set(['webhook_endpoints', 'inbound_sources', 'integration_credentials', 'audit_events', 'invitations']));
    await job().drain();

    const keys = await h.t.owner.query<{ wrapped: string | null; destroyed_at: Date | null; active: boolean }>('select wrapped, destroyed_at, active from org_keys where org_id = $1', [acme]);
    expect(keys.length).toBe(2);
    for (const k of keys) expect(k).toMatchObject({ wrapped: null, active: false, destroyed_at: expect.any(Date) });

    // Each of them, tried against every key that remains in the database.
    const remaining = await h.t.owner.query<{ id: string; kek_id: string; wrapped: string }>('select id, kek_id, wrapped from org_keys where wrapped is not null');
    const system = await h.t.owner.query<{ id: string; kek_id: string; wrapped: string }>('select id, kek_id, wrapped from system_keys');
    const candidates: WrappedKey[] = [...remaining, ...system].map((k) => ({ id: k.id, kekId: k.kek_id, wrapped: k.wrapped }));
    expect(candidates.length).toBeGreaterThan(0);
    const keyring = new Keyring([TEST_KEK]);
    let tried = 0;
    for (const { c, id, v } of backup) {
      const keyId = v.split('.')[1] ?? '';
      for (const candidate of [null, ...candidates]) {
        // The key the value names (null: as the database now holds it), or any other key passed off as it.
        const store: DataKeyStore = {
          active: () => Promise.resolve(null),
          byId: () => Promise.resolve(candidate ? { ...candidate, id: keyId } : null),
          insert: () => Promise.resolve(),
        };
        await expect(keyring.open(store, { scope: acme, table: c.table, column: c.column, row: id }, v)).rejects.toThrow();
        tried++;
      }
    }
    expect(tried).toBe(backup.length * (candidates.length + 1));
    // And the live rows hold none that a key opens: the same walk over what is stored now.
    for (const c of ORG_SEALED_COLUMNS) {
      const now = await h.t.owner.query<{ v: string }>(`select ${c.column} as v from ${c.table} where org_id = $1 and ${c.column} is not null and ${c.column} <> ''`, [acme]);
      for (const { v } of now) expect(backup.map((b) => b.v)).toContain(v);
    }

    // Still refused, never a 5xx: the inbound source and the credentials went with the keys.
    expect((await inbound()).statusCode).toBe(400);
    await expect(h.built.services.vault.use(acme, 'psa', { by: 'sync' }, (v) => Promise.resolve(v))).rejects.toMatchObject({ code: 'not_found' });
    // A seal for the shredded org (another instance's stale cache, a bug) creates no new key.
    h.built.services.sealer.forget(acme);
    await expect(h.t.db.withTenant({ orgId: acme }, (tx) => h.built.services.sealer.seal(tx, { scope: acme, table: 't', column: 'c', row: 'r' }, 'late')))
      .rejects.toMatchObject({ code: '55000' });
    // Nobody reaches the org; the org, its chain and the key rows stay, and the chain verifies.
    expect((await late.call('GET', url())).statusCode).toBe(404);
    expect((await late.call('GET', '/api/me')).json<{ orgs: OrgView[] }>().orgs.map((x) => x.id)).not.toContain(acme);
    expect(await h.t.owner.query('select 1 from memberships where org_id = $1', [acme])).toEqual([]);
    expect((await h.t.owner.query<{ shredded: boolean }>('select shredded_at is not null as shredded from organizations where org_id = $1', [acme]))[0]?.shredded).toBe(true);
    expect((await actions()).at(-1)).toBe('org.shredded');
    // What it kept in clear is gone too: projects, assets, roles, claims, endpoints and their delivery log.
    for (const table of ['projects', 'assets', 'custom_roles', 'org_domains', 'webhook_endpoints', 'webhook_deliveries', 'webhook_attempts']) {
      expect((await h.t.owner.query<{ n: number }>(`select count(*)::int as n from ${table} where org_id = $1`, [acme]))[0]?.n, table).toBe(0);
    }
    // The chain is kept, its personal parts unreadable; the shredding's own event (ids, counts) in clear.
    const trail = await h.built.services.auditReader.list({ orgId: acme, projectIds: null }, acme, { limit: 500 });
    expect(trail.events[0]).toMatchObject({ action: 'org.shredded', personal: 'clear' });
    expect(trail.events.slice(1).every((e) => e.personal === 'unreadable' && e.ip === '' && JSON.stringify(e.details) === '{}')).toBe(true);
    const verified = await h.built.services.auditVerifier.verify({ orgId: acme, projectIds: null }, acme);
    expect(verified).toMatchObject({ ok: true, problems: [] });
    // Another org is untouched.
    const globex = await signedIn(h, h.user('globex', 'owner').email);
    expect((await globex.call('GET', `/api/orgs/${h.orgId('globex')}/members`)).statusCode).toBe(200);
    // A second run finds nothing to do.
    expect(await h.built.services.shredder.shredIfDue(acme)).toBeNull();
  });
});
