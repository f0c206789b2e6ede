import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../../../test/support/app.js';
import { signedIn, type Client } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { checkpointLine, signCheckpoint } from './checkpoints.js';
import { MAX_PROBLEMS } from './verification.js';

interface Verification {
  ok: boolean;
  events: number;
  problems: string[];
  checkedAt: string;
}

/**
 * GET /api/orgs/:orgId/audit/verification: the org's chain verified with the server's chain keys
 * and its latest checkpoint, as `palisade audit verify --org` does, but on the runtime role
 * inside the caller's tenant binding.
 */
describe.each(ENGINES)('audit chain verification over the API on %s', (engine) => {
  let h: TestApp;
  let owner: Client;
  const checkpointFile = join(mkdtempSync(join(tmpdir(), 'palisade-verification-')), 'audit-checkpoints.jsonl');
  const url = (orgId: string) => `/api/orgs/${orgId}/audit/verification`;
  const eventCount = async (orgId: string) =>
    (await h.t.owner.query<{ n: number }>('select count(*)::int as n from audit_events where org_id = $1', [orgId]))[0]?.n;
  const tamper = async (statement: string, params: unknown[]) => {
    await h.t.owner.script('alter table audit_events disable trigger user');
    try {
      await h.t.owner.query(statement, params);
    } finally {
      await h.t.owner.script('alter table audit_events enable trigger user');
    }
  };
  const verify = async (by: Client, orgId: string): Promise<Verification> => {
    const res = await by.call('GET', url(orgId));
    expect(res.statusCode, res.body).toBe(200);
    return res.json<Verification>();
  };

  beforeAll(async () => {
    h = await createTestApp(engine, { config: { PALISADE_AUDIT_CHECKPOINT_FILE: checkpointFile } });
    owner = await signedIn(h, h.user('acme', 'owner').email);
  });
  afterAll(async () => h?.close());

  it('finds a fresh org\u2019s chain sound and counts its events', async () => {
    const created = await owner.call('POST', '/api/orgs', { name: 'Fresh', slug: `fresh-${engine}` });
    expect(created.statusCode, created.body).toBe(201);
    const fresh = created.json<{ id: string }>().id;
    const v = await verify(owner, fresh);
    expect(v).toEqual({ ok: true, events: 1, problems: [], checkedAt: h.clock.now().toISOString() });
    const acme = h.orgId('acme');
    expect(await verify(owner, acme)).toMatchObject({ ok: true, events: await eventCount(acme), problems: [] });
  });

  it('names an event edited in the database', async () => {
    const acme = h.orgId('acme');
    const target = (await h.t.owner.query<{ seq: string | number; id: string; action: string; details: unknown }>(
      'select seq, id, action, details from audit_events where org_id = $1 and seq = 2', [acme]))[0];
    if (!target) throw new Error('no event 2');
    await tamper(`update audit_events set details = '{"role":"owner"}'::jsonb where org_id = $1 and seq = 2`, [acme]);
    try {
      const v = await verify(owner, acme);
      expect(v.ok).toBe(false);
      expect(v.events).toBe(await eventCount(acme));
      expect(v.problems).toEqual([`event 2 (${target.id}, ${target.action}) was edited: its hash does not match its content`]);
    } finally {
      await tamper('update audit_events set details = $2::jsonb where org_id = $1 and seq = 2', [acme, JSON.stringify(target.details)]);
    }
    expect((await verify(owner, acme)).ok).toBe(true);
  });

  it('holds the chain to its latest checkpoint', async () => {
    const globex = h.orgId('globex');
    const globexOwner = await signedIn(h, h.user('globex', 'owner').email);
    const n = await eventCount(globex);
    expect((await verify(globexOwner, globex)).ok).toBe(true);
    // A checkpoint further along than the chain now is: events were deleted from its end (head restored from a backup).
    const cp = signCheckpoint(h.built.services.chainKeys, { org: globex, seq: (n ?? 0) + 3, hash: 'a'.repeat(64), at: '2026-01-01T00:00:00.000Z' });
    writeFileSync(checkpointFile, checkpointLine(cp));
    try {
      const v = await verify(globexOwner, globex);
      expect(v.ok).toBe(false);
      expect(v.problems).toEqual([`events ${(n ?? 0) + 1}..${(n ?? 0) + 3} are missing: the chain is shorter than its checkpoint of 2026-01-01T00:00:00.000Z`]);
      // Another org's checkpoint is not this one's business.
      expect((await verify(owner, h.orgId('acme'))).ok).toBe(true);
    } finally {
      writeFileSync(checkpointFile, '');
    }
    expect((await verify(globexOwner, globex)).ok).toBe(true);
  });

  it('does not take appends committed during the walk for a truncated chain', async () => {
    const acme = h.orgId('acme');
    const writes = Array.from({ length: 12 }, (_, i) => owner.call('POST', `/api/orgs/${acme}/projects`, { name: `Busy ${i}` }));
    const checks = Array.from({ length: 6 }, () => signedIn(h, h.user('acme', 'admin').email).then((c) => c.call('GET', url(acme))));
    const [written, answers] = await Promise.all([Promise.all(writes), Promise.all(checks)]);
    expect(written.map((r) => r.statusCode)).toEqual(written.map(() => 201));
    // Each answer is a clean verdict or "retry" (the chain moved under every walk; no lock is
    // taken, so the writes never waited): never a false alarm.
    for (const a of answers) {
      if (a.statusCode === 503) expect(a.json<{ code: string }>().code).toBe('unavailable');
      else expect(a.json<Verification>().problems).toEqual([]);
    }
    expect((await verify(owner, acme)).ok).toBe(true);
  });

  it('caps the problems it lists', async () => {
    const created = await owner.call('POST', '/api/orgs', { name: 'Many', slug: `many-${engine}` });
    const org = created.json<{ id: string }>().id;
    for (let i = 0; i < MAX_PROBLEMS + 4; i++) {
      expect((await owner.call('POST', `/api/orgs/${org}/projects`, { name: `P${i}` })).statusCode).toBe(201);
    }
    await tamper(`update audit_events set details = '{}'::jsonb where org_id = $1`, [org]);
    const v = await verify(owner, org);
    expect(v.ok).toBe(false);
    expect(v.events).toBe(MAX_PROBLEMS + 5);
    expect(v.problems).toHaveLength(MAX_PROBLEMS + 1);
    expect(v.problems[MAX_PROBLEMS]).toBe('and 5 more (palisade audit verify lists every one)');
  });

  it('is for holders of audit:read in the org, and reads that org only', async () => {
    const acme = h.orgId('acme');
    const globex = h.orgId('globex');
    for (const role of ['member', 'viewer', 'restricted_member', 'project_viewer'] as const) {
      const res = await (await signedIn(h, h.user('acme', role).email)).call('GET', url(acme));
      expect(res.statusCode, role).toBe(403);
    }
    await expect((await signedIn(h, h.user('acme', 'admin').email)).call('GET', url(acme))).resolves.toMatchObject({ statusCode: 200 });
    // Another org's id: not a member there.
    expect((await owner.call('GET', url(globex))).statusCode).toBe(404);
    // The walk runs inside the binding: bound to acme, globex's rows are not there to read.
    const ownerId = await h.userId(h.user('acme', 'owner').email);
    const v = await h.built.services.auditVerifier.verify({ orgId: acme, userId: ownerId, projectIds: null }, globex);
    expect(v).toMatchObject({ ok: false, events: 0, problems: ['the organization has no audit chain: its events and head were deleted'] });
  });
});
