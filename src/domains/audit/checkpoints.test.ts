import { appendFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { Keyring, newId } from '../../crypto/index.js';
import { checkpointLine, readCheckpoints, signCheckpoint } from './checkpoints.js';
import { chainKeysFrom } from './keys.js';

const DIR = mkdtempSync(join(tmpdir(), 'palisade-checkpoints-'));
const keys = chainKeysFrom(new Keyring([{ id: 'k2', key: Buffer.alloc(32, 2) }, { id: 'k1', key: Buffer.alloc(32, 1) }]));
const hash = (c: string) => c.repeat(64);

describe('the checkpoint file', () => {
  it('keeps each org\'s checkpoint with the highest position, under any KEK the keyring holds', async () => {
    const [a, b] = [newId(), newId()];
    const old = chainKeysFrom(new Keyring([{ id: 'k1', key: Buffer.alloc(32, 1) }]));
    const file = join(DIR, 'good.jsonl');
    writeFileSync(file, [
      signCheckpoint(old, { org: a, seq: 3, hash: hash('a'), at: '2026-01-01T00:00:00.000Z' }),
      signCheckpoint(keys, { org: a, seq: 9, hash: hash('b'), at: '2026-01-01T00:05:00.000Z' }),
      signCheckpoint(keys, { org: b, seq: 2, hash: hash('c'), at: '2026-01-01T00:05:00.000Z' }),
      signCheckpoint(keys, { org: a, seq: 5, hash: hash('d'), at: '2026-01-01T00:10:00.000Z' }),
    ].map(checkpointLine).join('') + '\n');
    const set = await readCheckpoints(file, keys);
    expect(set.problems).toEqual([]);
    expect([...set.latest.values()].map((c) => [c.org, c.seq, c.keyId])).toEqual([[a, 9, 'k2'], [b, 2, 'k2']]);
    expect((await readCheckpoints(join(DIR, 'absent.jsonl'), keys)).exists).toBe(false);
  });

  // review R4 finding 3
  it('reports every line that is no checkpoint or fails its MAC, and trusts none of them', async () => {
    const org = newId();
    const good = signCheckpoint(keys, { org, seq: 4, hash: hash('a'), at: '2026-01-01T00:00:00.000Z' });
    const stranger = chainKeysFrom(new Keyring([{ id: 'k2', key: Buffer.alloc(32, 9) }]));
    const file = join(DIR, 'forged.jsonl');
    writeFileSync(file, checkpointLine(good));
    appendFileSync(file, checkpointLine({ ...good, seq: 40 }));
    appendFileSync(file, checkpointLine(signCheckpoint(stranger, { org, seq: 41, hash: hash('b'), at: good.at })));
    appendFileSync(file, checkpointLine({ ...good, keyId: 'k9' }));
    appendFileSync(file, `${JSON.stringify({ v: 1, org, seq: 42, hash: hash('c'), at: good.at, keyId: 'k2', mac: good.mac, note: 'x' })}\n`);
    appendFileSync(file, 'not json\n');
    appendFileSync(file, checkpointLine(signCheckpoint(keys, { org, seq: 4, hash: hash('e'), at: '2026-01-02T00:00:00.000Z' })));
    const set = await readCheckpoints(file, keys);
    expect(set.problems).toEqual([
      `line 2 (org ${org}, seq 40) fails its MAC: forged or corrupted`,
      `line 3 (org ${org}, seq 41) fails its MAC: forged or corrupted`,
      `line 4 (org ${org}, seq 4) names an unknown key "k9": forged or the key is missing`,
      'line 5 is not a checkpoint',
      'line 6 is not a checkpoint',
      `line 7 (org ${org}, seq 4) disagrees with the checkpoint of ${good.at} on that event: the chain was rewritten between them`,
    ]);
    expect(set.latest.get(org)?.seq).toBe(4);
  });
});

describe.each(ENGINES)('the server\'s checkpoints on %s', (engine) => {
  let h: TestApp;
  const file = join(DIR, `${engine}-server.jsonl`);
  const lines = () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
  beforeAll(async () => {
    h = await createTestApp(engine, { config: { PALISADE_AUDIT_CHECKPOINT_FILE: file } });
  });
  afterAll(async () => h?.close());

  const createProject = async (name: string) => {
    const cookie = await h.cookieFor(h.user('acme', 'owner').email);
    const res = await h.built.app.inject({ method: 'POST', url: `/api/orgs/${h.orgId('acme')}/projects`, headers: { cookie, origin: ORIGIN }, payload: { name } });
    expect(res.statusCode).toBe(201);
  };
  const headOf = async (orgId: string) =>
    (await h.t.owner.query<{ seq: number | string; hash: string; mac: string }>('select seq, hash, mac from audit_heads where org_id = $1', [orgId]))[0];

  it('records the head of each chain appended to, once it moved, in the file and the log', async () => {
    const checkpoints = h.built.services.checkpoints;
    // The demo seed appended to both orgs' chains.
    expect(await checkpoints.flush()).toBe(2);
    expect(await checkpoints.flush()).toBe(0);
    await createProject('Checkpointed');
    expect(await checkpoints.flush()).toBe(1);
    expect(await checkpoints.flush()).toBe(0);
    expect(lines()).toHaveLength(3);
    const set = await readCheckpoints(file, h.built.services.chainKeys);
    expect(set.problems).toEqual([]);
    const acme = await headOf(h.orgId('acme'));
    expect(set.latest.get(h.orgId('acme'))).toMatchObject({ seq: Number(acme?.seq), hash: acme?.hash });
    const logged = h.logs.filter((l) => l.includes('"msg":"audit checkpoint"'));
    expect(logged).toHaveLength(3);
    // The log carries the same lines: a file rebuilt from it verifies.
    const fromLog = join(DIR, `${engine}-from-log.jsonl`);
    writeFileSync(fromLog, logged.map((l) => `${JSON.stringify((JSON.parse(l) as { auditCheckpoint: unknown }).auditCheckpoint)}\n`).join(''));
    const rebuilt = await readCheckpoints(fromLog, h.built.services.chainKeys);
    expect(rebuilt.problems).toEqual([]);
    expect(rebuilt.latest).toEqual(set.latest);
  });

  it('does not vouch for a head that fails its MAC', async () => {
    const globex = h.orgId('globex');
    const before = await headOf(globex);
    await h.t.owner.query('update audit_heads set seq = seq - 1 where org_id = $1', [globex]);
    h.built.services.checkpoints.noteAppend(globex);
    expect(await h.built.services.checkpoints.flush()).toBe(0);
    expect(h.logs.some((l) => l.includes('audit checkpoint refused: the chain head\'s MAC does not match'))).toBe(true);
    await h.t.owner.query('update audit_heads set seq = $2 where org_id = $1', [globex, before?.seq]);
  });

  it('writes a last round when it stops (the server\'s shutdown)', async () => {
    const checkpoints = h.built.services.checkpoints;
    checkpoints.start();
    await createProject('At shutdown');
    const n = lines().length;
    await checkpoints.stop();
    expect(lines()).toHaveLength(n + 1);
    expect(JSON.parse(lines().at(-1) ?? '{}')).toMatchObject({ org: h.orgId('acme'), seq: Number((await headOf(h.orgId('acme')))?.seq) });
  });
});
