import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyChain } from '../../src/domains/audit/index.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { ENGINES, TEST_RUNTIME_ROLE } from '../support/db.js';
import { runBin, type Outcome } from '../support/bin.js';

const STATE_DIR = mkdtempSync(join(tmpdir(), 'palisade-cli-'));

interface EventRow {
  seq: number | string;
  id: string;
  action: string;
}

/**
 * `palisade audit verify`: on PostgreSQL the real CLI in a child process against the test
 * database; PGlite in memory cannot be shared with another process, so there the same walk
 * (verifyChain over the owner connection, one chain per org plus the system chain) runs here.
 */
describe.each(ENGINES)('palisade audit verify on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  const q = <R>(text: string, params: unknown[] = []) => h.t.owner.query<R>(text, params);

  async function verify(args: string[] = []): Promise<Outcome> {
    if (engine === 'postgres') {
      return runBin(['audit', 'verify', ...args], {
        DATABASE_URL: h.t.ownerUrl ?? '',
        PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE,
        PALISADE_ENV: 'test',
        PALISADE_KEKS: `k1:${Buffer.alloc(32, 7).toString('base64')}`,
        PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
        PALISADE_STATE_DIR: STATE_DIR,
        LOG_LEVEL: 'silent',
      });
    }
    const slug = args[0] === '--org' ? args[1] : undefined;
    const orgs = await q<{ org_id: string; slug: string }>(
      slug ? 'select org_id, slug from organizations where slug = $1' : 'select org_id, slug from organizations order by slug', slug ? [slug] : []);
    if (slug && orgs.length === 0) return { code: 2, out: '', err: `no organization ${slug}\n` };
    const lines: string[] = [];
    let failed = 0;
    for (const o of slug ? orgs : [{ org_id: SYSTEM_ORG_ID, slug: '(system)' }, ...orgs]) {
      const r = await verifyChain((text, params) => h.t.owner.query(text, params), h.built.services.chainKeys, o.org_id, o.slug);
      lines.push(`${r.ok ? 'ok  ' : 'FAIL'} ${o.slug} (${o.org_id}): ${r.events} events`, ...r.problems.map((p) => `     ${p}`));
      if (!r.ok) failed++;
    }
    return { code: failed > 0 ? 1 : 0, out: `${lines.join('\n')}\n`, err: '' };
  }
  const events = () => q<EventRow>('select seq, id, action from audit_events where org_id = $1 order by seq', [acme]);
  /** The problem lines printed for acme's chain. */
  const acmeProblems = (out: string) => {
    const lines = out.split('\n');
    const start = lines.findIndex((l) => l.includes(` acme (${acme})`));
    const rest = lines.slice(start + 1);
    const end = rest.findIndex((l) => !l.startsWith('     '));
    return rest.slice(0, end === -1 ? rest.length : end).map((l) => l.trim());
  };
  async function expectOk(): Promise<void> {
    const r = await verify();
    expect(r.code, r.out + r.err).toBe(0);
    expect(r.out).not.toContain('FAIL');
  }

  beforeAll(async () => {
    h = await createTestApp(engine);
    acme = h.orgId('acme');
    // Normal activity on every chain: logins (system), changes, a refusal, a cross-org probe.
    const owner = await h.login(h.user('acme', 'owner'));
    const viewer = await h.cookieFor(h.user('acme', 'viewer').email);
    const send = (cookie: string, method: 'POST' | 'PATCH', url: string, payload: object) =>
      h.built.app.inject({ method, url, headers: { cookie, origin: ORIGIN }, payload });
    for (const name of ['One', 'Two', 'Three']) expect((await send(owner, 'POST', `/api/orgs/${acme}/projects`, { name })).statusCode).toBe(201);
    expect((await send(owner, 'POST', `/api/orgs/${acme}/invitations`, { email: 'cli@example.test', role: 'viewer' })).statusCode).toBe(201);
    expect((await send(viewer, 'POST', `/api/orgs/${acme}/projects`, { name: 'denied' })).statusCode).toBe(403);
    expect((await send(owner, 'POST', `/api/orgs/${h.orgId('globex')}/projects`, { name: 'probe' })).statusCode).toBe(404);
  });
  afterAll(async () => {
    await h?.t.owner.script('alter table audit_events enable trigger audit_events_append_only');
    await h?.close();
  });

  it('passes after normal activity, naming every chain with its event count', async () => {
    const r = await verify();
    expect(r.code, r.out + r.err).toBe(0);
    const count = async (orgId: string) => (await q<{ n: number }>('select count(*)::int as n from audit_events where org_id = $1', [orgId]))[0]?.n;
    expect(r.out).toContain(`ok   (system) (${SYSTEM_ORG_ID}): ${await count(SYSTEM_ORG_ID)} events`);
    expect(r.out).toContain(`ok   acme (${acme}): ${await count(acme)} events`);
    expect(r.out).toContain(`ok   globex (${h.orgId('globex')}): ${await count(h.orgId('globex'))} events`);
    expect(await count(acme)).toBeGreaterThan(10);
  });

  it('an unknown --org exits 2', async () => {
    const r = await verify(['--org', 'nope']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('no organization nope');
  });

  describe('with the append-only trigger disabled by a superuser', () => {
    beforeAll(async () => {
      await h.t.owner.script('alter table audit_events disable trigger audit_events_append_only');
    });

    it('(a) an edited event fails verification naming its seq and id; restoring it passes', async () => {
      const target = (await events()).find((e) => e.action === 'project.created' && e.seq !== 1) as EventRow;
      const seq = Number(target.seq);
      const original = (await q<{ details: unknown; actor_id: string; result: string; at: Date }>(
        'select details, actor_id, result, at from audit_events where org_id = $1 and seq = $2', [acme, seq]))[0];
      const edits: [string, unknown][] = [
        ['details', JSON.stringify({ name: 'Tampered' })],
        ['actor_id', '00000000-0000-4000-8000-000000000001'],
        ['result', 'denied'],
        ['at', new Date(new Date(original?.at ?? 0).getTime() + 1000)],
      ];
      for (const [column, value] of edits) {
        await q(`update audit_events set ${column} = $1 where org_id = $2 and seq = $3`, [value, acme, seq]);
        const r = await verify();
        expect(r.code, column).toBe(1);
        expect(r.out).toContain(`FAIL acme (${acme})`);
        expect(acmeProblems(r.out)).toEqual([`event ${seq} (${target.id}, project.created) was edited: its hash does not match its content`]);
        await q('update audit_events set details = $1, actor_id = $2, result = $3, at = $4 where org_id = $5 and seq = $6',
          [JSON.stringify(original?.details), original?.actor_id, original?.result, original?.at, acme, seq]);
      }
      await expectOk();
      // --org limits the walk to one chain.
      await q('update audit_events set details = $1 where org_id = $2 and seq = 1', [JSON.stringify({ slug: 'evil' }), h.orgId('globex')]);
      expect((await verify(['--org', 'acme'])).code).toBe(0);
      const g = await verify(['--org', 'globex']);
      expect(g.code).toBe(1);
      expect(g.out).toContain(`FAIL globex (${h.orgId('globex')})`);
      await q('update audit_events set details = $1 where org_id = $2 and seq = 1', [JSON.stringify({ slug: 'globex' }), h.orgId('globex')]);
      await expectOk();
    });

    it('(b) a deleted middle event is named as a gap', async () => {
      const list = await events();
      const k = Math.floor(list.length / 2);
      const [gone, next] = [list[k - 1] as EventRow, list[k] as EventRow];
      const saved = await q<Record<string, unknown>>('select * from audit_events where org_id = $1 and seq = $2', [acme, k]);
      await q('delete from audit_events where org_id = $1 and seq = $2', [acme, k]);
      const r = await verify();
      expect(r.code).toBe(1);
      expect(Number(gone.seq)).toBe(k);
      expect(acmeProblems(r.out)).toEqual([
        `events ${k}..${k} are missing (deleted) before event ${k + 1} (${next.id})`,
        `event ${k + 1} (${next.id}, ${next.action}) does not link to its predecessor: deleted or reordered`,
      ]);
      await reinsert(saved[0]);
      await expectOk();
    });

    it('(c) two events swapped in order are detected', async () => {
      const list = await events();
      const i = list.length - 3;
      const [a, b] = [list[i - 1] as EventRow, list[i] as EventRow];
      const swap = async () => {
        await q('update audit_events set seq = -1 where org_id = $1 and seq = $2', [acme, i]);
        await q('update audit_events set seq = $2 where org_id = $1 and seq = $3', [acme, i, i + 1]);
        await q('update audit_events set seq = $2 where org_id = $1 and seq = -1', [acme, i + 1]);
      };
      await swap();
      const r = await verify();
      expect(r.code).toBe(1);
      const problems = acmeProblems(r.out);
      expect(problems).toContain(`event ${i} (${b.id}, ${b.action}) does not link to its predecessor: deleted or reordered`);
      expect(problems).toContain(`event ${i} (${b.id}, ${b.action}) was edited: its hash does not match its content`);
      expect(problems).toContain(`event ${i + 1} (${a.id}, ${a.action}) does not link to its predecessor: deleted or reordered`);
      await swap();
      await expectOk();
    });

    it('(d) a deleted last event is detected through the chain head', async () => {
      const list = await events();
      const n = list.length;
      const saved = await q<Record<string, unknown>>('select * from audit_events where org_id = $1 and seq = $2', [acme, n]);
      await q('delete from audit_events where org_id = $1 and seq = $2', [acme, n]);
      const r = await verify();
      expect(r.code).toBe(1);
      expect(acmeProblems(r.out)).toEqual([
        `the chain head records ${n} events but the last present is ${n - 1}: events were deleted from the end`,
      ]);
      await reinsert(saved[0]);
      await expectOk();
    });

    it('(e) a forged event appended without moving the head is detected', async () => {
      const last = (await q<{ seq: number | string; hash: string }>(
        'select seq, hash from audit_events where org_id = $1 order by seq desc limit 1', [acme]))[0];
      const seq = Number(last?.seq) + 1;
      await q(`insert into audit_events (org_id, seq, id, at, actor_type, action, result, prev_hash, hash)
               values ($1, $2, '00000000-0000-4000-8000-00000000f0f0', now(), 'user', 'forged', 'success', $3, $4)`,
      [acme, seq, last?.hash, 'f'.repeat(64)]);
      const r = await verify();
      expect(r.code).toBe(1);
      expect(acmeProblems(r.out)).toEqual([
        `event ${seq} (00000000-0000-4000-8000-00000000f0f0, forged) names an unknown chain key "": forged or the key is missing`,
        `the chain head records ${seq - 1} events but the last present is ${seq}: events were appended outside the audit writer`,
      ]);
      await q('delete from audit_events where org_id = $1 and seq = $2', [acme, seq]);
      await expectOk();
    });
  });

  async function reinsert(row: Record<string, unknown> | undefined): Promise<void> {
    if (!row) throw new Error('nothing saved');
    const cols = Object.keys(row);
    await q(`insert into audit_events (${cols.join(', ')}) values (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
      cols.map((c) => (c === 'details' ? JSON.stringify(row[c]) : row[c])));
  }
});
