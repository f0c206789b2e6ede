import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId, sha256Hex } from '../../crypto/index.js';
import { exec, one } from '../../db/database.js';
import { systemContext } from '../../kernel/context.js';
import { canonicalJson } from './chain.js';
import { verifyChain } from './verify.js';

/**
 * The runtime role may INSERT audit rows and move the chain head (the writer needs both), so
 * links must be keyed: a forger with the database role but not the KEK cannot make one verify.
 */
describe.each(ENGINES)('audit chain forgery on %s', (engine) => {
  let h: TestApp;
  beforeAll(async () => {
    h = await createTestApp(engine);
  });
  afterAll(async () => h?.close());

  // review R4 finding 3
  // In full: a head set back after the last events were deleted is not extended: the change fails,
  // nothing is written, verify names the head
  it('refuses to extend a head set back after the last events were deleted', async () => {
    const acme = h.orgId('acme');
    const cookie = await h.cookieFor(h.user('acme', 'owner').email);
    const createProject = (name: string) =>
      h.built.app.inject({ method: 'POST', url: `/api/orgs/${acme}/projects`, headers: { cookie, origin: ORIGIN }, payload: { name } });
    for (const name of ['A', 'B', 'C']) expect((await createProject(name)).statusCode).toBe(201);
    const q = h.t.owner.query;
    const head = (await q<{ seq: number | string; hash: string; key_id: string; mac: string }>(
      'select seq, hash, key_id, mac from audit_heads where org_id = $1', [acme]))[0];
    const n = Number(head?.seq);
    const saved = await q<Record<string, unknown>>('select * from audit_events where org_id = $1 and seq > $2 order by seq', [acme, n - 2]);
    const earlier = (await q<{ hash: string }>('select hash from audit_events where org_id = $1 and seq = $2', [acme, n - 2]))[0];
    await h.t.owner.script('alter table audit_events disable trigger user');
    await q('delete from audit_events where org_id = $1 and seq > $2', [acme, n - 2]);
    await h.t.owner.script('alter table audit_events enable trigger user');
    await q('update audit_heads set seq = $2, hash = $3 where org_id = $1', [acme, n - 2, earlier?.hash]);

    // Appending now would link event n-1 onto event n-2 and give the head a valid MAC again.
    const refused = await createProject('D');
    expect(refused.statusCode).toBe(500);
    const count = async () => (await q<{ n: number }>('select count(*)::int as n from audit_events where org_id = $1', [acme]))[0]?.n;
    expect(await count()).toBe(n - 2);
    expect((await q('select 1 from projects where org_id = $1 and name = $2', [acme, 'D'])).length).toBe(0);
    await expect(h.t.db.withTenant({ orgId: acme }, (tx) => h.built.services.audit.append(tx, acme, systemContext('test'), { action: 'asset.created' })))
      .rejects.toThrow(`audit chain of org ${acme}: the chain head's MAC does not match its position (seq ${n - 2})`);
    expect((await verifyChain(q, h.built.services.chainKeys, acme, 'acme')).problems)
      .toEqual([`the chain head's MAC does not match its position (seq ${n - 2}): the head was moved or forged`]);

    // Restored (events and head), the chain verifies and takes changes again.
    await h.t.owner.script('alter table audit_events disable trigger user');
    for (const row of saved) {
      const cols = Object.keys(row);
      await q(`insert into audit_events (${cols.join(', ')}) values (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
        cols.map((c) => (c === 'details' ? JSON.stringify(row[c]) : row[c])));
    }
    await h.t.owner.script('alter table audit_events enable trigger user');
    await q('update audit_heads set seq = $2, hash = $3, key_id = $4, mac = $5 where org_id = $1', [acme, head?.seq, head?.hash, head?.key_id, head?.mac]);
    expect((await createProject('E')).statusCode).toBe(201);
    expect((await verifyChain(q, h.built.services.chainKeys, acme, 'acme')).ok).toBe(true);
  });

  // In full: a head without a MAC (blanked, or written before migration 014 and never sealed) is
  // refused the same way
  it('refuses a head without a MAC the same way', async () => {
    const globex = h.orgId('globex');
    const head = (await h.t.owner.query<{ mac: string }>('select mac from audit_heads where org_id = $1', [globex]))[0];
    await h.t.owner.query(`update audit_heads set mac = '' where org_id = $1`, [globex]);
    await expect(h.t.db.withTenant({ orgId: globex }, (tx) => h.built.services.audit.append(tx, globex, systemContext('test'), { action: 'asset.created' })))
      .rejects.toThrow('the chain head carries no MAC');
    expect((await verifyChain(h.t.owner.query, h.built.services.chainKeys, globex, 'globex')).problems).toEqual(['the chain head carries no MAC']);
    await h.t.owner.query('update audit_heads set mac = $2 where org_id = $1', [globex, head?.mac]);
    expect((await verifyChain(h.t.owner.query, h.built.services.chainKeys, globex, 'globex')).ok).toBe(true);
  });

  it('an event appended by the runtime role with a recomputed unkeyed hash is named by verify', async () => {
    const acme = h.orgId('acme');
    expect((await verifyChain(h.t.owner.query, h.built.services.chainKeys, acme, 'acme')).ok).toBe(true);
    const forgedId = newId();
    await h.t.db.withTenant({ orgId: acme }, async (tx) => {
      const head = await one<{ seq: number | string; hash: string }>(tx, sql`select seq, hash from audit_heads where org_id = ${acme} for update`);
      if (!head) throw new Error('no head');
      const seq = Number(head.seq) + 1;
      const at = new Date().toISOString();
      const fields = [acme, seq, forgedId, at, 'user', null, 'owner', 'member.role_changed', null, null, 'success', '', '', '', {}, 'k1'];
      const hash = sha256Hex(`${head.hash}\n${canonicalJson(fields)}`);
      await exec(tx, sql`insert into audit_events (org_id, seq, id, at, actor_type, actor_role, action, result, details, key_id, prev_hash, hash)
                         values (${acme}, ${seq}, ${forgedId}, ${at}, 'user', 'owner', 'member.role_changed', 'success', '{}'::jsonb, 'k1', ${head.hash}, ${hash})`);
      await exec(tx, sql`update audit_heads set seq = ${seq}, hash = ${hash} where org_id = ${acme}`);
    });
    const report = await verifyChain(h.t.owner.query, h.built.services.chainKeys, acme, 'acme');
    expect(report.ok).toBe(false);
    expect(report.problems.join('\n')).toContain(`(${forgedId}, member.role_changed) was edited`);
    // The role moved the head without the key: its MAC fails, and the writer will not build on it.
    expect(report.problems).toContain(`the chain head's MAC does not match its position (seq ${report.events}): the head was moved or forged`);
    await expect(h.t.db.withTenant({ orgId: acme }, (tx) => h.built.services.audit.append(tx, acme, systemContext('test'), { action: 'asset.created' })))
      .rejects.toThrow('refusing to extend it');
  });

  it('an event naming a key the verifier does not hold is reported as such', async () => {
    const globex = h.orgId('globex');
    await h.t.owner.script(`alter table audit_events disable trigger user`);
    await h.t.owner.query(`update audit_events set key_id = 'nope' where org_id = $1 and seq = 1`, [globex]);
    await h.t.owner.script(`alter table audit_events enable trigger user`);
    const report = await verifyChain(h.t.owner.query, h.built.services.chainKeys, globex, 'globex');
    expect(report.problems[0]).toMatch(/event 1 \(.*\) names an unknown chain key "nope"/);
  });
});
