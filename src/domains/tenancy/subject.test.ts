import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { code, signedIn } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { auditRows } from '../../../test/support/evidence.js';
import { newId } from '../../crypto/index.js';
import { systemContext } from '../../kernel/context.js';
import { invitationEmailRef } from './invitations.js';
import type { ErasureView, SubjectExportView } from './responses.js';
import { verifyArchive, type PublishedKey } from '../exports/index.js';

/**
 * Data-subject requests about one member, answered by an owner: the export holds what the org
 * has about them (and nothing of another member or org); the erasure removes it, destroys the
 * personal parts of the audit events naming them while the chain still verifies, and deletes
 * their account only when no other org holds them. The raw tables are read afterwards: the
 * address is nowhere, and the tables the id (now a pseudonym) stays in are listed.
 */
describe.each(ENGINES)('data-subject export and erasure on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  const url = (p: string) => `/api/orgs/${acme}${p}`;
  const owner = () => signedIn(h, h.user('acme', 'owner').email);
  /** A demo login with its user id. */
  async function who(org: string, role: Parameters<TestApp['user']>[1]) {
    const u = h.user(org, role);
    return { ...u, id: await h.userId(u.email) };
  }

  /**
   * The tables a value appears in as a whole JSON string, also inside a text column holding JSON
   * (escaped there: a webhook payload), read as the owner of the database.
   */
  async function tablesHolding(value: string): Promise<string[]> {
    const tables = await h.t.owner.query<{ name: string }>(
      `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1`,
    );
    const found: string[] = [];
    for (const { name } of tables) {
      const [hit] = await h.t.owner.query<{ n: number }>(`select count(*)::int as n from "${name}" t where strpos(lower(row_to_json(t)::text), lower($1)) > 0 or strpos(lower(row_to_json(t)::text), lower($2)) > 0`,
        [JSON.stringify(value), JSON.stringify(JSON.stringify(value)).slice(1, -1)]);
      if ((hit?.n ?? 0) > 0) found.push(name);
    }
    return found;
  }

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
  });
  afterAll(async () => h?.close());

  it('exports what the org holds about a member, opened, and nothing about anyone else', async () => {
    const member = await who('acme', 'member');
    const o = await owner();
    // Evidence naming the member: a role change by the owner, a key of theirs, an invitation to their address.
    expect((await o.call('PATCH', url(`/members/${member.id}`), { role: 'viewer' })).statusCode).toBe(204);
    expect((await o.call('PATCH', url(`/members/${member.id}`), { role: 'member' })).statusCode).toBe(204);
    const m = await signedIn(h, member.email);
    const key = await m.call('POST', url('/api-keys'), { name: 'mine', kind: 'secret', permissions: ['projects:read'] });
    expect(key.statusCode, key.body).toBe(201);

    const res = await o.call('POST', url(`/members/${member.id}/personal-data`));
    expect(res.statusCode, res.body).toBe(200);
    const doc = res.json<SubjectExportView>();
    expect(doc.user).toMatchObject({ id: member.id, email: member.email });
    expect(doc.membership.role).toBe('member');
    expect(doc.apiKeys.map((k) => k.name)).toEqual(['mine']);
    expect(JSON.stringify(doc)).not.toContain(key.json<{ token: string }>().token);
    const changes = doc.auditEvents.filter((e) => e.action === 'member.role_changed');
    expect(changes.map((e) => e.details)).toEqual([
      expect.objectContaining({ from: 'member', to: 'viewer' }), expect.objectContaining({ from: 'viewer', to: 'member' }),
    ]);
    // Every event is about them; none of another member's (the admin's own sign-in, say) or org's.
    for (const e of doc.auditEvents) {
      expect(e.actor.id === member.id || e.target?.id === member.id || JSON.stringify(e.details).includes(member.email) || JSON.stringify(e.details).includes(member.id)).toBe(true);
    }
    expect(JSON.stringify(doc)).not.toContain(h.user('acme', 'admin').email);
    // The owner's address and browser on the role changes are the owner's, not the member's.
    for (const e of changes) expect(e).toMatchObject({ ip: '', userAgent: '' });
    expect(JSON.stringify(doc)).not.toContain(h.orgId('globex'));
    expect(doc.notIncluded.length).toBeGreaterThan(0);
    const [ev] = await auditRows(h, `where org_id = $1 and action = 'member.data_exported'`, [acme]);
    expect(ev).toMatchObject({ target_id: member.id, details: { auditEvents: doc.auditEvents.length } });
  });

  it('is an owner\u2019s, about a member of their org', async () => {
    const member = await who('acme', 'member');
    const admin = await signedIn(h, h.user('acme', 'admin').email);
    expect((await admin.call('POST', url(`/members/${member.id}/personal-data`))).statusCode).toBe(403);
    expect((await admin.call('POST', url(`/members/${member.id}/erase`), { confirm: member.email })).statusCode).toBe(403);
    const stranger = await who('globex', 'member');
    expect((await (await owner()).call('POST', url(`/members/${stranger.id}/personal-data`))).statusCode).toBe(404);
    expect((await (await owner()).call('POST', url(`/members/${stranger.id}/erase`), { confirm: stranger.email })).statusCode).toBe(404);
    const me = await who('acme', 'owner');
    expect(code(await (await owner()).call('POST', url(`/members/${me.id}/erase`), { confirm: me.email }))).toBe('validation_failed');
    // Another owner is demoted first: their erasure would take their owner actions' evidence.
    await h.t.owner.query(`update memberships set role = 'owner' where org_id = $1 and user_id = $2`, [acme, (await who('acme', 'admin')).id]);
    const coOwner = await who('acme', 'admin');
    expect(code(await (await owner()).call('POST', url(`/members/${coOwner.id}/erase`), { confirm: coOwner.email }))).toBe('conflict');
    await h.t.owner.query(`update memberships set role = 'admin' where org_id = $1 and user_id = $2`, [acme, coOwner.id]);
  });

  it('erases a member of no other org: account gone, address nowhere, personal parts destroyed, the chain verifies', async () => {
    const member = await who('acme', 'member');
    const session = await signedIn(h, member.email);
    expect((await session.call('GET', url('/projects'))).statusCode).toBe(200);
    const o = await owner();
    // A webhook endpoint: payloads name the member by id (an invitation's address never reaches one).
    expect((await o.call('POST', url('/webhooks'), { url: 'https://hooks.example.com/in', events: ['*'] })).statusCode).toBe(201);
    // The invitation they accepted when they joined (one to a member cannot be made now): it holds their address.
    await h.t.db.withTenant({ orgId: acme, projectIds: null }, async (tx) => {
      const { sealer } = h.built.services;
      const id = newId();
      await sql`insert into invitations (org_id, id, email, email_sealed, email_index, role, token_hash, invited_by, expires_at, accepted_at, accepted_by)
                values (${acme}, ${id}, '', ${await sealer.seal(tx, invitationEmailRef(acme, id), member.email.toUpperCase())},
                        ${await sealer.emailIndex(tx, member.email, acme)}, 'viewer', ${`joined-${id}`}, ${h.user('acme', 'owner').userId},
                        now() + interval '1 day', now(), ${member.id})`.execute(tx);
      await h.built.services.audit.append(tx, acme, systemContext('test: the invitation they joined by'), {
        action: 'invitation.created', target: { type: 'invitation', id }, details: { email: member.email.toUpperCase(), role: 'viewer', restricted: false },
      });
    });
    // An export taken before the erasure holds them too.
    const requested = await o.call('POST', url('/exports'));
    expect(requested.statusCode, requested.body).toBe(202);
    await h.built.services.exportJob.drain();
    const exportId = requested.json<{ id: string }>().id;
    const link = (await o.call('POST', url(`/exports/${exportId}/link`))).json<{ url: string }>().url;

    // The address typed wrong: nothing happens.
    const wrong = await o.call('POST', url(`/members/${member.id}/erase`), { confirm: 'someone@example.com' });
    expect(code(wrong)).toBe('validation_failed');
    expect((await h.t.owner.query('select 1 from users where id = $1', [member.id])).length).toBe(1);

    const res = await o.call('POST', url(`/members/${member.id}/erase`), { confirm: member.email });
    expect(res.statusCode, res.body + h.logs.filter((l) => l.includes('rror')).join('\n')).toBe(200);
    const erased = res.json<ErasureView>();
    expect(erased).toMatchObject({ account: 'deleted', apiKeysRevoked: 1, invitationsRemoved: 1 });
    expect(erased.auditEventsErased).toBeGreaterThan(2);

    // The export is withdrawn: its link no longer downloads, and a new one is refused.
    expect((await h.built.app.inject({ method: 'GET', url: new URL(link, 'http://x').pathname + new URL(link, 'http://x').search })).statusCode).toBe(400);
    expect((await o.call('GET', url(`/exports/${exportId}`))).json<{ state: string }>().state).toBe('expired');

    // Signed out and unable to sign in; the address is free again.
    expect((await session.call('GET', url('/projects'))).statusCode).toBe(401);
    const login = await h.built.app.inject({ method: 'POST', url: '/api/auth/login', payload: { email: member.email, password: member.password } });
    expect(login.statusCode).toBe(401);

    // What is left behind: the address in no table at all (webhook payloads included); the id (a
    // pseudonym now) in the trail (actor and target of its events), in the revoked key's creator
    // column, and in the webhook notice of the erasure itself.
    expect(await tablesHolding(member.email)).toEqual([]);
    expect(await tablesHolding(member.id)).toEqual(['api_keys', 'audit_events', 'webhook_deliveries']);
    const notices = await h.t.owner.query<{ payload: string }>('select payload from webhook_deliveries where org_id = $1 and strpos(payload, $2) > 0', [acme, member.id]);
    expect(notices.map((n) => (JSON.parse(n.payload) as { type: string }).type)).toEqual(['member.erased']);
    const about = await auditRows(h, `where org_id = $1 and (actor_id = $2 or target_id = $2) and action <> 'member.erased' order by seq`, [acme, member.id]);
    expect(about.length).toBeGreaterThan(2);
    for (const e of about) expect(e.stored.personal_sealed).toBeNull();
    const trail = await (await owner()).call('GET', url(`/audit?target=${member.id}`));
    expect(trail.statusCode).toBe(200);
    const shown = trail.json<{ events: { action: string; personal: string; details: unknown }[] }>().events;
    expect(shown.filter((e) => e.action !== 'member.erased').every((e) => e.personal === 'erased' && JSON.stringify(e.details) === '{}')).toBe(true);
    // The erasure itself is chained in clear, naming what it destroyed: verification holds it to that.
    const [done] = shown.filter((e) => e.action === 'member.erased');
    expect(done).toMatchObject({ personal: 'clear', ip: '', userAgent: '', details: { account: 'deleted' } });
    const named = (done?.details as { erasedEvents: string[] }).erasedEvents;
    // Every event they acted in or were the target of, and the invitation naming their address.
    const [invitation] = await auditRows(h, `where org_id = $1 and action = 'invitation.created' order by seq desc limit 1`, [acme]);
    expect([...named].sort()).toEqual([...about.map((e) => e.id), invitation?.id].sort());
    expect(await h.built.services.auditVerifier.verify({ orgId: acme, projectIds: null }, acme)).toMatchObject({ ok: true, problems: [] });
    // A later export of the org shows those events as erased, as the trail does.
    const again = await (await owner()).call('POST', url('/exports'));
    expect(again.statusCode, again.body).toBe(202);
    await h.built.services.exportJob.drain();
    const fresh = (await (await owner()).call('POST', url(`/exports/${again.json<{ id: string }>().id}/link`))).json<{ url: string }>().url;
    const archive = (await h.built.app.inject({ method: 'GET', url: fresh })).rawPayload;
    const { files } = verifyArchive(archive, (await h.built.app.inject({ method: 'GET', url: '/.well-known/palisade-export-keys' })).json<{ keys: PublishedKey[] }>().keys);
    const exported = [...files].filter(([n]) => n.startsWith('tables/audit_events/')).flatMap(([, b]) => b.toString('utf8').trim().split('\n'))
      .map((l) => JSON.parse(l) as { id: string; personal: { state: string } });
    expect(exported.filter((e) => about.some((a) => a.id === e.id)).map((e) => e.personal.state)).toEqual(about.map(() => 'erased'));
  });

  it('names in verification a sealed part removed without an erasure, and keeps a part from being emptied', async () => {
    const [victim] = await auditRows(h, `where org_id = $1 and personal_sealed is not null order by seq limit 1`, [acme]);
    if (!victim) throw new Error('no sealed event');
    await expect(h.t.db.withTenant({ orgId: acme }, (tx) => sql`update audit_events set personal_sealed = '' where id = ${victim.id}`.execute(tx)))
      .rejects.toThrow(/removed by setting it null/);
    // The application's role nulls a part (what an erasure does) but chains no erasure naming it.
    await h.t.db.withTenant({ orgId: acme }, (tx) => sql`update audit_events set personal_sealed = null where id = ${victim.id}`.execute(tx));
    const report = await h.built.services.auditVerifier.verify({ orgId: acme, projectIds: null }, acme);
    expect(report.ok).toBe(false);
    expect(report.problems).toEqual([`event ${victim.seq} (${victim.id}, ${victim.action}) lost its sealed details, address and user agent, and no erasure names it`]);
  });

  it('erases only this org\u2019s records of a person other orgs still hold: their account and the other org\u2019s trail stay', async () => {
    const person = await who('globex', 'viewer');
    const o = await owner();
    await h.t.owner.query(`insert into memberships (org_id, user_id, role) values ($1, $2, 'viewer')`, [acme, person.id]);
    expect((await o.call('PATCH', url(`/members/${person.id}`), { role: 'member' })).statusCode).toBe(204);
    const globexBefore = await auditRows(h, `where org_id = $1 and personal_sealed is not null`, [h.orgId('globex')]);

    const res = await o.call('POST', url(`/members/${person.id}/erase`), { confirm: person.email });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json<ErasureView>()).toMatchObject({ account: 'kept' });
    expect((await h.t.owner.query('select 1 from memberships where org_id = $1 and user_id = $2', [acme, person.id])).length).toBe(0);
    const still = await signedIn(h, person.email);
    expect((await still.call('GET', `/api/orgs/${h.orgId('globex')}`)).statusCode).toBe(200);
    expect((await still.call('GET', url(''))).statusCode).toBe(404);
    const globexAfter = await auditRows(h, `where org_id = $1 and personal_sealed is not null and seq <= $2`, [h.orgId('globex'), Math.max(...globexBefore.map((e) => e.seq))]);
    expect(globexAfter.length).toBe(globexBefore.length);
  });
});
