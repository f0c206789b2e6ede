import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId, sha256Hex } from '../../crypto/index.js';
import { exec, one } from '../../db/database.js';
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
  });

  it('an event naming a key the verifier does not hold is reported as such', async () => {
    const globex = h.orgId('globex');
    await h.t.owner.script(`alter table audit_events disable trigger audit_events_append_only`);
    await h.t.owner.query(`update audit_events set key_id = 'nope' where org_id = $1 and seq = 1`, [globex]);
    await h.t.owner.script(`alter table audit_events enable trigger audit_events_append_only`);
    const report = await verifyChain(h.t.owner.query, h.built.services.chainKeys, globex, 'globex');
    expect(report.problems[0]).toMatch(/event 1 \(.*\) names an unknown chain key "nope"/);
  });
});
