import { appendFileSync, copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec } from '../../src/db/database.js';
import { auditCheckpoint, auditVerify, checkpointLine, chainKeysFrom, signCheckpoint, type Checkpoint } from '../../src/domains/audit/index.js';
import { Keyring } from '../../src/crypto/index.js';
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

interface HeadRow {
  seq: number | string;
  hash: string;
  key_id: string;
  mac: string;
}

/**
 * `palisade audit verify` and `audit checkpoint`: the functions the CLI runs (auditVerify,
 * auditCheckpoint, over the owner connection) run here; on PostgreSQL the cases marked `real`
 * also run the real CLI in a child process against the test database (its wiring, arguments and
 * exit codes), which costs a Node start with tsx each, so not every case pays it. PGlite in
 * memory cannot be shared with another process.
 */
describe.each(ENGINES)('palisade audit verify on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let backupHead: HeadRow | undefined;
  const q = <R>(text: string, params: unknown[] = []) => h.t.owner.query<R>(text, params);
  const checkpointFile = join(STATE_DIR, `${engine}-audit-checkpoints.jsonl`);
  // Generous: under load, each run of the real CLI starts a Node process with tsx.
  const SLOW = { timeout: 300_000 };

  async function cli(sub: 'verify' | 'checkpoint', args: string[] = [], real = false): Promise<Outcome> {
    if (engine === 'postgres' && real) {
      return runBin(['audit', sub, ...args], {
        DATABASE_URL: h.t.ownerUrl ?? '',
        PALISADE_DB_RUNTIME_ROLE: TEST_RUNTIME_ROLE,
        PALISADE_ENV: 'test',
        PALISADE_KEKS: `k1:${Buffer.alloc(32, 7).toString('base64')}`,
        PALISADE_SESSION_SECRET: Buffer.alloc(32, 9).toString('base64'),
        PALISADE_STATE_DIR: STATE_DIR,
        PALISADE_AUDIT_CHECKPOINT_FILE: checkpointFile,
        LOG_LEVEL: 'silent',
      });
    }
    const at = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
    const opts = { org: at('--org'), checkpointFile: at('--checkpoints') ?? checkpointFile };
    const query = <R>(text: string, params?: unknown[]) => h.t.owner.query<R>(text, params);
    return sub === 'verify'
      ? auditVerify(query, h.built.services.chainKeys, opts)
      : auditCheckpoint(query, h.built.services.chainKeys, h.clock, opts);
  }
  const verify = (args: string[] = [], real = false) => cli('verify', args, real);
  const events = () => q<EventRow>('select seq, id, action from audit_events where org_id = $1 order by seq', [acme]);
  /** The problem lines printed under the first line containing `header`. */
  const problemsUnder = (out: string, header: string) => {
    const lines = out.split('\n');
    const start = lines.findIndex((l) => l.includes(header));
    if (start < 0) return null;
    const rest = lines.slice(start + 1);
    const end = rest.findIndex((l) => !l.startsWith('     '));
    return rest.slice(0, end === -1 ? rest.length : end).map((l) => l.trim());
  };
  const problemsOf = (out: string, orgId: string) => problemsUnder(out, ` (${orgId}): `);
  const acmeProblems = (out: string) => problemsOf(out, acme);
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
    for (const name of ['One', 'Two']) expect((await send(owner, 'POST', `/api/orgs/${acme}/projects`, { name })).statusCode).toBe(201);
    // What a backup taken now would hold of acme's head: a position with its genuine MAC.
    backupHead = (await q<HeadRow>('select seq, hash, key_id, mac from audit_heads where org_id = $1', [acme]))[0];
    expect((await send(owner, 'POST', `/api/orgs/${acme}/projects`, { name: 'Three' })).statusCode).toBe(201);
    expect((await send(owner, 'POST', `/api/orgs/${acme}/invitations`, { email: 'cli@example.test', role: 'viewer' })).statusCode).toBe(201);
    expect((await send(viewer, 'POST', `/api/orgs/${acme}/projects`, { name: 'denied' })).statusCode).toBe(403);
    expect((await send(owner, 'POST', `/api/orgs/${h.orgId('globex')}/projects`, { name: 'probe' })).statusCode).toBe(404);
  });
  afterAll(async () => {
    await h?.t.owner.script('alter table audit_events enable trigger user');
    await h?.close();
  });

  it('passes after normal activity, naming every chain with its event count', SLOW, async () => {
    const r = await verify([], true);
    expect(r.code, r.out + r.err).toBe(0);
    const count = async (orgId: string) => (await q<{ n: number }>('select count(*)::int as n from audit_events where org_id = $1', [orgId]))[0]?.n;
    expect(r.out).toContain(`ok   (system) (${SYSTEM_ORG_ID}): ${await count(SYSTEM_ORG_ID)} events`);
    expect(r.out).toContain(`ok   acme (${acme}): ${await count(acme)} events`);
    expect(r.out).toContain(`ok   globex (${h.orgId('globex')}): ${await count(h.orgId('globex'))} events`);
    expect(await count(acme)).toBeGreaterThan(10);
  });

  it('reports the walk: progress lines every 2 s with the running rate, and a summary with the rate', async () => {
    const total = (await q<{ n: number }>('select count(*)::int as n from audit_events'))[0]!.n;
    const chains = (await q<{ n: number }>('select count(distinct org_id)::int as n from audit_events'))[0]!.n;
    let t = 0;
    const lines: string[] = [];
    // A clock 2.5 s on at every reading: every batch is past the 2 s between progress lines.
    const r = await auditVerify(<R>(text: string, params?: unknown[]) => h.t.owner.query<R>(text, params), h.built.services.chainKeys,
      { checkpointFile, progress: (l) => lines.push(l), nowMs: () => (t += 2500) });
    expect(r.code, r.out + r.err).toBe(0);
    expect(lines.length).toBeGreaterThanOrEqual(chains); // orgs without events are walked too
    expect(lines[0]).toMatch(/^chain 1 of \d+ \(\(system\)\): \d+ events; \d+ in all at [\d,]+ events\/s$/);
    const summary = r.out.trim().split('\n').at(-1);
    expect(summary).toMatch(new RegExp(`^verified ${total.toLocaleString('en-US')} events in \\d+ chains in [\\d.]+ s \\([\\d,]+ events/s\\)$`));
  });

  it('an unknown --org exits 2', async () => {
    const r = await verify(['--org', 'nope'], true);
    expect(r.code).toBe(2);
    expect(r.err).toContain('no organization nope');
  });

  describe('with the append-only trigger disabled by a superuser', () => {
    beforeAll(async () => {
      await h.t.owner.script('alter table audit_events disable trigger user');
    });

    it('(a) an edited event fails verification naming its seq and id; restoring it passes', SLOW, async () => {
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
        // The real CLI once: its exit code for a broken chain.
        const r = await verify([], column === 'details');
        expect(r.code, column).toBe(1);
        expect(r.out).toContain(`FAIL acme (${acme})`);
        expect(acmeProblems(r.out)).toEqual([`event ${seq} (${target.id}, project.created) was edited: its hash does not match its content`]);
        await q('update audit_events set details = $1, actor_id = $2, result = $3, at = $4 where org_id = $5 and seq = $6',
          [JSON.stringify(original?.details), original?.actor_id, original?.result, original?.at, acme, seq]);
      }
      await expectOk();
      // --org limits the walk to one chain.
      const [kept] = await q<{ details: unknown }>('select details from audit_events where org_id = $1 and seq = 1', [h.orgId('globex')]);
      await q('update audit_events set details = $1 where org_id = $2 and seq = 1', [JSON.stringify({ slug: 'evil' }), h.orgId('globex')]);
      expect((await verify(['--org', 'acme'])).code).toBe(0);
      const g = await verify(['--org', 'globex']);
      expect(g.code).toBe(1);
      expect(g.out).toContain(`FAIL globex (${h.orgId('globex')})`);
      await q('update audit_events set details = $1 where org_id = $2 and seq = 1', [JSON.stringify(kept?.details), h.orgId('globex')]);
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

    // review R4 finding 3
    // In full: (f) the last three events deleted and the head set back onto the event before them:
    // the head's MAC names it
    it('(f) the last three events deleted and the head set back: the head\'s MAC names it', SLOW, async () => {
      const list = await events();
      const n = list.length;
      const saved = await q<Record<string, unknown>>('select * from audit_events where org_id = $1 and seq > $2 order by seq', [acme, n - 3]);
      const head = (await q<HeadRow>('select seq, hash, key_id, mac from audit_heads where org_id = $1', [acme]))[0];
      const before = (await q<{ hash: string }>('select hash from audit_events where org_id = $1 and seq = $2', [acme, n - 3]))[0];
      await q('delete from audit_events where org_id = $1 and seq > $2', [acme, n - 3]);
      await q('update audit_heads set seq = $2, hash = $3 where org_id = $1', [acme, n - 3, before?.hash]);
      const r = await verify();
      expect(r.code, r.out).toBe(1);
      expect(acmeProblems(r.out)).toEqual([`the chain head's MAC does not match its position (seq ${n - 3}): the head was moved or forged`]);
      for (const row of saved) await reinsert(row);
      await q('update audit_heads set seq = $2, hash = $3, key_id = $4, mac = $5 where org_id = $1', [acme, head?.seq, head?.hash, head?.key_id, head?.mac]);
      await expectOk();
    });

    // review R4 finding 3
    // In full: (g) the same cut with an older head restored from a backup, MAC and all: the
    // checkpoint names the missing range
    it('(g) the same cut with an older head restored from a backup: the checkpoint names it', SLOW, async () => {
      const cp = await cli('checkpoint', [], true);
      expect(cp.code, cp.out + cp.err).toBe(0);
      expect(cp.out).toContain(`checkpointed 3 chains to ${checkpointFile}`);
      const latest = latestCheckpoint(acme);
      const n = (await events()).length;
      expect(latest?.seq).toBe(n);
      const b = Number(backupHead?.seq);
      expect(b).toBeLessThan(n);
      const saved = await q<Record<string, unknown>>('select * from audit_events where org_id = $1 and seq > $2 order by seq', [acme, b]);
      const head = (await q<HeadRow>('select seq, hash, key_id, mac from audit_heads where org_id = $1', [acme]))[0];
      await q('delete from audit_events where org_id = $1 and seq > $2', [acme, b]);
      await q('update audit_heads set seq = $2, hash = $3, key_id = $4, mac = $5 where org_id = $1',
        [acme, backupHead?.seq, backupHead?.hash, backupHead?.key_id, backupHead?.mac]);
      const r = await verify();
      expect(r.code, r.out).toBe(1);
      expect(acmeProblems(r.out)).toEqual([`events ${b + 1}..${n} are missing: the chain is shorter than its checkpoint of ${latest?.at}`]);
      // Nor does `audit checkpoint` vouch for the cut chain.
      const again = await cli('checkpoint');
      expect(again.code).toBe(1);
      expect(latestCheckpoint(acme)).toEqual(latest);
      for (const row of saved) await reinsert(row);
      await q('update audit_heads set seq = $2, hash = $3, key_id = $4, mac = $5 where org_id = $1', [acme, head?.seq, head?.hash, head?.key_id, head?.mac]);
      // A clean chain still passes against its checkpoint.
      await expectOk();
    });

    // review R4 finding 3
    it('(h) a forged or mangled line in the checkpoint file is reported and not trusted', SLOW, async () => {
      const copy = join(STATE_DIR, `${engine}-forged.jsonl`);
      copyFileSync(checkpointFile, copy);
      const lines = readFileSync(copy, 'utf8').split('\n').filter(Boolean).length;
      const real = latestCheckpoint(acme) as Checkpoint;
      // A checkpoint claiming more events than acme has, MACed under a key the server does not hold.
      const other = chainKeysFrom(new Keyring([{ id: 'k1', key: Buffer.alloc(32, 8) }]));
      appendFileSync(copy, checkpointLine(signCheckpoint(other, { ...real, seq: real.seq + 5 })));
      appendFileSync(copy, checkpointLine({ ...real, seq: real.seq + 5 }));
      appendFileSync(copy, '{"v":1,"org":"not an org"}\n');
      const r = await verify(['--checkpoints', copy]);
      expect(r.code, r.out).toBe(1);
      expect(acmeProblems(r.out)).toEqual([]);
      expect(problemsUnder(r.out, `FAIL checkpoints (${copy})`)).toEqual([
        `line ${lines + 1} (org ${acme}, seq ${real.seq + 5}) fails its MAC: forged or corrupted`,
        `line ${lines + 2} (org ${acme}, seq ${real.seq + 5}) fails its MAC: forged or corrupted`,
        `line ${lines + 3} is not a checkpoint`,
      ]);
    });

    // review R4 finding 3
    // In full: (i) an org row deleted under its chain: the runtime role may not, and verify names
    // the chain without its org
    it('(i) an org row deleted under its chain: the runtime role may not; verify names it', SLOW, async () => {
      const { orgId } = await newOrg('initech');
      const denied = await h.t.db.withTenant({ orgId }, (tx) => exec(tx, sql`delete from organizations where org_id = ${orgId}`))
        .then(() => 'deleted', (e: { code?: string }) => e.code);
      expect(denied).toBe('42501');
      await q('delete from organizations where org_id = $1', [orgId]);
      const r = await verify();
      expect(r.code, r.out).toBe(1);
      expect(r.out).toContain(`FAIL (no organization) (${orgId}): 1 event`);
      expect(problemsOf(r.out, orgId)).toEqual(['its organization row is missing (deleted): the chain has no org']);
    });

    // review R4 finding 3
    it('(j) a whole chain deleted past its checkpoint (events, head, then the org row) is named', SLOW, async () => {
      const { orgId } = await newOrg('umbrella');
      expect((await cli('checkpoint')).out).toContain('checkpointed 1 chain to');
      const at = latestCheckpoint(orgId)?.at;
      await q('delete from audit_events where org_id = $1', [orgId]);
      await q('delete from audit_heads where org_id = $1', [orgId]);
      const gone = `the chain is gone: its checkpoint of ${at} recorded 1 events (1..1 are missing)`;
      const r = await verify();
      expect(r.code, r.out).toBe(1);
      expect(r.out).toContain(`FAIL umbrella (${orgId}): 0 events`);
      expect(problemsOf(r.out, orgId)).toEqual([gone]);
      await q('delete from organizations where org_id = $1', [orgId]);
      const r2 = await verify();
      expect(r2.code, r2.out).toBe(1);
      expect(problemsOf(r2.out, orgId)).toEqual([gone, 'its organization row is missing (deleted): the chain has no org']);
      expect(acmeProblems(r2.out)).toEqual([]);
    });
  });

  /** Creates an org through the API (its org.created event starts its chain). */
  async function newOrg(slug: string): Promise<{ orgId: string }> {
    const cookie = await h.cookieFor(h.user('acme', 'owner').email);
    const res = await h.built.app.inject({ method: 'POST', url: '/api/orgs', headers: { cookie, origin: ORIGIN }, payload: { name: slug, slug } });
    expect(res.statusCode, res.body).toBe(201);
    const orgId = (await q<{ org_id: string }>('select org_id::text as org_id from organizations where slug = $1', [slug]))[0]?.org_id;
    if (!orgId) throw new Error('no org');
    return { orgId };
  }

  function latestCheckpoint(orgId: string): Checkpoint | undefined {
    const all = readFileSync(checkpointFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Checkpoint & { v: number });
    const mine = all.filter((c) => c.org === orgId).sort((a, b) => a.seq - b.seq).at(-1);
    if (!mine) return undefined;
    const { org, seq, hash, at, keyId, mac } = mine;
    return { org, seq, hash, at, keyId, mac };
  }

  async function reinsert(row: Record<string, unknown> | undefined): Promise<void> {
    if (!row) throw new Error('nothing saved');
    const cols = Object.keys(row);
    await q(`insert into audit_events (${cols.join(', ')}) values (${cols.map((_, i) => `$${i + 1}`).join(', ')})`,
      cols.map((c) => (c === 'details' ? JSON.stringify(row[c]) : row[c])));
  }
});
