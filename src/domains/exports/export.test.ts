import { sql } from 'kysely';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../../../test/support/app.js';
import { code, signedIn, type Client } from '../../../test/support/client.js';
import { ENGINES } from '../../../test/support/db.js';
import { STEP_UP_SECONDS } from '../../kernel/context.js';
import { createDataKeyJob } from '../keys/index.js';
import { TAR_END, tarEntry } from './tar.js';
import { generateExportSigningKey } from '../../crypto/index.js';
import { ARCHIVES_KEPT } from './service.js';
import { archivePath, createArchiveWriter, createExportJob, verifyArchive, verifyArchiveStream, type ExportView, type Manifest, type PublishedKey } from './index.js';

const CREDENTIAL_CANARY = 'CANARY-export-credential-5b7e1c90d2';

/**
 * Tenant export end to end: an owner asks, the job writes the archive, a single-use link
 * downloads it, and what comes out verifies with the published key and holds exactly the org's
 * rows (counted against the database), none of another org's, and no secret.
 */
describe.each(ENGINES)('tenant export on %s', (engine) => {
  let h: TestApp;
  let acme: string;
  let globex: string;
  let dir: string;
  let owner: Client;
  const url = (p = '') => `/api/orgs/${acme}/exports${p}`;
  const keys = async () => (await h.built.app.inject({ method: 'GET', url: '/.well-known/palisade-export-keys' })).json<{ keys: PublishedKey[] }>().keys;
  const download = (link: string) => h.built.app.inject({ method: 'GET', url: link });

  async function finishedExport(): Promise<ExportView> {
    const res = await owner.call('POST', url());
    expect(res.statusCode, res.body).toBe(202);
    await h.built.services.exportJob.drain();
    const view = (await owner.call('GET', url(`/${res.json<ExportView>().id}`))).json<ExportView>();
    expect(view.state).toBe('done');
    return view;
  }
  async function linkFor(id: string): Promise<string> {
    const res = await owner.call('POST', url(`/${id}/link`));
    expect(res.statusCode, res.body).toBe(201);
    return res.json<{ url: string }>().url;
  }
  /** Rows of each tenant table of the org, counted by the table owner (no RLS in the way). */
  async function dbCount(table: string, org: string): Promise<number> {
    const r = await h.t.owner.query<{ n: string }>(`select count(*)::text as n from ${table} where org_id = $1`, [org]);
    return Number(r[0]?.n);
  }

  /**
   * The manifest's counts against the database. The trail grows while the export runs (its own
   * completion, links and downloads are audited): it is compared up to the last event exported.
   */
  async function expectCountsMatch(manifest: Manifest, files: Map<string, Buffer>): Promise<void> {
    for (const t of manifest.tables) {
      if (t.name !== 'audit_events') {
        expect(t.rows, t.name).toBe(await dbCount(t.name, acme));
        continue;
      }
      const last = t.files.at(-1)?.name ?? '';
      const seq = (JSON.parse((files.get(last)?.toString('utf8') ?? '').trim().split('\n').at(-1) ?? '{}') as { seq: number }).seq;
      const r = await h.t.owner.query<{ n: string }>('select count(*)::text as n from audit_events where org_id = $1 and seq <= $2', [acme, seq]);
      expect(t.rows, t.name).toBe(Number(r[0]?.n));
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'palisade-export-'));
    h = await createTestApp(engine, { config: { PALISADE_EXPORT_DIR: dir } });
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    owner = await signedIn(h, h.user('acme', 'owner').email);
    // Secrets of both orgs: an integration credential and an API key.
    for (const [org, who] of [[acme, 'owner'], [globex, 'owner']] as const) {
      const c = await signedIn(h, h.user(org === acme ? 'acme' : 'globex', who).email);
      const cred = await c.call('POST', `/api/orgs/${org}/integrations/credentials`, { name: 'psa', kind: 'api_token', secret: CREDENTIAL_CANARY });
      expect(cred.statusCode, cred.body).toBe(201);
      const key = await c.call('POST', `/api/orgs/${org}/api-keys`, { name: 'ci', kind: 'secret', permissions: ['projects:read'] });
      expect(key.statusCode, key.body).toBe(201);
    }
    // An invitation: its address is sealed at rest, and the org's own data in its export.
    const invited = await owner.call('POST', `/api/orgs/${acme}/invitations`, { email: 'invitee@example.test', role: 'member' });
    expect(invited.statusCode, invited.body).toBe(201);
  });
  afterAll(async () => h?.close());

  it('writes an archive whose signed manifest verifies, whose digests and counts match the database, and which holds nothing of another org', async () => {
    const view = await finishedExport();
    expect(view.rowsDone).toBe(view.rowsTotal);
    expect(view.rowsDone).toBeGreaterThan(10);
    const res = await download(await linkFor(view.id));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-tar');
    expect(res.headers['content-disposition']).toBe(`attachment; filename="palisade-export-${view.id}.tar"`);
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['cache-control']).toBe('no-store');
    const { manifest, files, problems } = verifyArchive(res.rawPayload, await keys());
    expect(problems).toEqual([]);
    if (!manifest) throw new Error('no manifest');
    expect(manifest.orgId).toBe(acme);
    await expectCountsMatch(manifest, files);
    expect(manifest.tables.find((t) => t.name === 'assets')?.rows).toBeGreaterThan(0);
    // Every row is the org's; the other org's id appears nowhere.
    for (const [name, data] of files) {
      if (!name.endsWith('.ndjson')) continue;
      for (const line of data.toString('utf8').trim().split('\n')) expect((JSON.parse(line) as { org_id: string }).org_id).toBe(acme);
      expect(data.toString('utf8')).not.toContain(globex);
    }
    // The audit trail, each event as stored with its personal part opened.
    const audit = (files.get(manifest.tables.find((t) => t.name === 'audit_events')?.files[0]?.name ?? '') ?? Buffer.alloc(0)).toString('utf8');
    const first = JSON.parse(audit.split('\n')[0] ?? '{}') as { hash?: string; personal?: { state: string } };
    expect(first.hash).toBeTruthy();
    expect(first.personal?.state).toMatch(/^(open|clear)$/);
    expect(audit).not.toContain('personal_sealed');
    // Sealed data of the org's own (an invited address) is opened; its sealed form and index stay out.
    const invitations = manifest.tables.find((t) => t.name === 'invitations')?.files.map((f) => files.get(f.name)?.toString('utf8') ?? '').join('') ?? '';
    expect(invitations).toContain('"email_opened":"invitee@example.test"');
    expect(invitations).not.toContain('email_sealed');
    expect(invitations).not.toContain('email_index');
    // The archive at rest is encrypted: none of the rows' text is in the file on disk.
    const disk = (await import('node:fs')).readFileSync(archivePath(dir, acme, view.id));
    expect(disk.includes(Buffer.from(acme))).toBe(false);
    expect(disk.includes(Buffer.from('"org_id"'))).toBe(false);
  });

  it('exports no secret: no credential value, key or token hash, sealed value or wrapped key', async () => {
    const view = await finishedExport();
    const archive = (await download(await linkFor(view.id))).rawPayload;
    expect(archive.toString('utf8')).not.toContain(CREDENTIAL_CANARY);
    // The rows (the manifest names the excluded columns, with why).
    const { files } = verifyArchive(archive, await keys());
    const text = [...files].filter(([name]) => name.endsWith('.ndjson')).map(([, data]) => data.toString('utf8')).join('');
    expect(text.length).toBeGreaterThan(1000);
    const secrets = [
      ...(await h.t.owner.query<{ v: string }>('select token_hash as v from api_keys where org_id = $1', [acme])),
      ...(await h.t.owner.query<{ v: string }>('select secret_sealed as v from integration_credentials where org_id = $1', [acme])),
      ...(await h.t.owner.query<{ v: string }>('select wrapped as v from org_keys where org_id = $1 and wrapped is not null', [acme])),
      ...(await h.t.owner.query<{ v: string }>('select personal_sealed as v from audit_events where org_id = $1 and personal_sealed is not null limit 20', [acme])),
      ...(await h.t.owner.query<{ v: string }>('select key_sealed as v from org_exports where org_id = $1', [acme])),
    ];
    expect(secrets.length).toBeGreaterThan(5);
    for (const s of secrets) expect(text.includes(s.v), s.v.slice(0, 12)).toBe(false);
    for (const col of ['token_hash', 'secret_sealed', 'wrapped', 'key_sealed', 'private_sealed']) expect(text).not.toContain(`"${col}"`);
  });

  it('refuses a tampered manifest, a changed file and a key that is not published', async () => {
    const archive = (await download(await linkFor((await finishedExport()).id))).rawPayload;
    const published = await keys();
    const at = archive.indexOf(Buffer.from(`"orgId": "${acme}"`));
    expect(at).toBeGreaterThan(0);
    const tampered = Buffer.from(archive);
    tampered.write(`"orgId": "${globex}"`, at);
    expect(verifyArchive(tampered, published).problems).toContain('the manifest signature does not verify');
    const row = archive.indexOf(Buffer.from('"org_id":'));
    const changed = Buffer.from(archive);
    changed[row + 1] = 'O'.charCodeAt(0);
    expect(verifyArchive(changed, published).problems.some((p) => p.endsWith('digest differs'))).toBe(true);
    expect(verifyArchive(archive, []).problems[0]).toMatch(/^no published key/);
    // A key planted with the database role alone (its private half not sealed under the KEK) is never published.
    const planted = generateExportSigningKey();
    await h.t.db.withSystem('test', (tx) => sql`insert into export_signing_keys (id, public_jwk, private_sealed, active, created_at)
      values (${planted.kid}, ${JSON.stringify(planted.publicJwk)}::jsonb, 'v1.x.y', false, now())`.execute(tx));
    expect((await keys()).map((k) => k.kid)).not.toContain(planted.kid);
    expect(await keys()).toEqual(published);
    // The streaming verifier (the CLI's) agrees, whatever the chunking, and sees a cut archive.
    const chunks = (b: Buffer, n: number) => Readable.from(Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n)));
    expect((await verifyArchiveStream(chunks(archive, 333), published)).problems).toEqual([]);
    expect((await verifyArchiveStream(chunks(tampered, 4096), published)).problems).toContain('the manifest signature does not verify');
    expect((await verifyArchiveStream(chunks(changed, 1000), published)).problems.some((p) => p.endsWith('digest differs'))).toBe(true);
    expect((await verifyArchiveStream(chunks(archive.subarray(0, archive.length - 2048), 700), published)).problems).toEqual(['the archive is cut short']);
    // A forged entry under the name of a genuine one (read first by `tar -xO`), or one hidden after
    // the end marker (extracted by `tar -i`): both verifiers refuse, neither only checks the genuine.
    const name = [...verifyArchive(archive, published).files.keys()].find((n) => n.startsWith('tables/memberships/')) ?? '';
    const forged = Buffer.concat([tarEntry(name, Buffer.from('{"forged":true}\n'), new Date()), archive]);
    expect(verifyArchive(forged, published).problems).toContain(`${name} appears twice`);
    expect((await verifyArchiveStream(chunks(forged, 1000), published)).problems).toContain(`${name} appears twice`);
    const hidden = Buffer.concat([archive, tarEntry('tables/memberships/999999.ndjson', Buffer.from('{"forged":true}\n'), new Date()), TAR_END]);
    expect(verifyArchive(hidden, published).problems).toEqual(['data after the end of the archive']);
    expect((await verifyArchiveStream(chunks(hidden, 1000), published)).problems).toEqual(['data after the end of the archive']);
  });

  it('spends a link once: of two concurrent downloads one succeeds, and a used or expired link is refused', async () => {
    const view = await finishedExport();
    const link = await linkFor(view.id);
    const both = await Promise.all([download(link), download(link)]);
    expect(both.map((r) => r.statusCode).sort()).toEqual([200, 400]);
    expect(code(both.find((r) => r.statusCode === 400) as LightMyRequestResponse)).toBe('token_invalid');
    expect((await download(link)).statusCode).toBe(400);
    const late = await linkFor(view.id);
    h.clock.advance(16 * 60_000);
    expect(code(await download(late))).toBe('token_invalid');
    // An id that is no export, a forged token: the same refusal.
    expect(code(await download(late.replace(view.id, globex)))).toBe('token_invalid');
    expect(code(await download(`${late.split('?')[0]}?token=pal_exd_${'A'.repeat(43)}`))).toBe('token_invalid');
    // A live link of one export, sent to another (finished) export's download: refused.
    owner = await signedIn(h, h.user('acme', 'owner').email);
    const first = await finishedExport();
    const firstLink = await linkFor(first.id);
    const second = await finishedExport();
    expect(code(await download(firstLink.replace(first.id, second.id)))).toBe('token_invalid');
    const actions = await h.t.owner.query<{ action: string }>(`select action from audit_events where org_id = $1 and action like 'org.export%' order by seq`, [acme]);
    expect(actions.map((a) => a.action)).toEqual(expect.arrayContaining(['org.export_requested', 'org.export_completed', 'org.export_link_created', 'org.export_downloaded']));
  });

  it('is for owners of the org, freshly stepped up', async () => {
    owner = await signedIn(h, h.user('acme', 'owner').email);
    const admin = await signedIn(h, h.user('acme', 'admin').email);
    expect((await admin.call('POST', url())).statusCode).toBe(403);
    expect((await admin.call('GET', url())).statusCode).toBe(403);
    const other = await signedIn(h, h.user('globex', 'owner').email);
    expect((await other.call('POST', url())).statusCode).toBe(404);
    const view = (await owner.call('GET', url())).json<{ exports: ExportView[] }>().exports[0];
    expect((await other.call('POST', url(`/${view?.id ?? ''}/link`))).statusCode).toBe(404);
    expect((await other.call('POST', `/api/orgs/${globex}/exports/${view?.id ?? ''}/link`)).statusCode).toBe(404);
    h.clock.advance((STEP_UP_SECONDS + 1) * 1000);
    const stale = await owner.call('POST', url());
    expect(code(stale)).toBe('step_up_required');
    owner = await signedIn(h, h.user('acme', 'owner').email);
  });

  it('resumes after the job is killed between batches, never offering a half-written archive', async () => {
    const res = await owner.call('POST', url());
    expect(res.statusCode, res.body).toBe(202);
    const id = res.json<ExportView>().id;
    const s = h.built.services;
    let batches = 0;
    const dying = createArchiveWriter({
      db: h.t.db, sealer: s.sealer, audit: s.audit, clock: h.clock, signing: s.exportSigning, dir, retentionDays: 7, batchSize: 5,
      beforeCommit: () => {
        if (++batches === 4) throw new Error('killed between the write and the commit');
      },
    });
    const job = createExportJob({ db: h.t.db, clock: h.clock, logger: h.logger, archives: dying });
    await job.tick();
    const mid = (await owner.call('GET', url(`/${id}`))).json<ExportView>();
    expect(mid.state).toBe('running');
    expect(mid.rowsDone).toBeGreaterThan(0);
    expect(mid.rowsDone).toBeLessThan(mid.rowsTotal);
    // The killed batch's bytes are on disk past what was committed; no link is handed out.
    const committed = await h.t.owner.query<{ b: string }>('select bytes_written::text as b from org_exports where id = $1', [id]);
    expect(statSync(archivePath(dir, acme, id)).size).toBeGreaterThan(Number(committed[0]?.b));
    expect(code(await owner.call('POST', url(`/${id}/link`)))).toBe('conflict');
    // The lease runs out; the next pass truncates the leftover and finishes in small batches.
    h.clock.advance(61_000);
    const steady = createArchiveWriter({ db: h.t.db, sealer: s.sealer, audit: s.audit, clock: h.clock, signing: s.exportSigning, dir, retentionDays: 7, batchSize: 5 });
    await createExportJob({ db: h.t.db, clock: h.clock, logger: h.logger, archives: steady }).drain();
    const done = (await owner.call('GET', url(`/${id}`))).json<ExportView>();
    expect(done.state).toBe('done');
    const { manifest, files, problems } = verifyArchive((await download(await linkFor(id))).rawPayload, await keys());
    expect(problems).toEqual([]);
    if (!manifest) throw new Error('no manifest');
    await expectCountsMatch(manifest, files);
    expect(manifest?.tables.find((t) => t.name === 'assets')?.files.length).toBeGreaterThan(0);
  });

  it('keeps to the tables it started with when a migration adds a tenant table mid-export', async () => {
    const res = await owner.call('POST', url());
    expect(res.statusCode, res.body).toBe(202);
    const id = res.json<ExportView>().id;
    const s = h.built.services;
    await s.archives.step(acme, id);
    await s.archives.step(acme, id);
    // Sorts before every table the export started with; the runtime role cannot even read it yet.
    await h.t.owner.script(`create table aaa_export_probe (org_id uuid not null, id uuid not null, note text, primary key (org_id, id));
                            select palisade_admin.tenant_table('aaa_export_probe');`);
    try {
      await s.exportJob.drain();
      const done = (await owner.call('GET', url(`/${id}`))).json<ExportView>();
      expect(done.state).toBe('done');
      const { manifest, files, problems } = verifyArchive((await download(await linkFor(id))).rawPayload, await keys());
      expect(problems).toEqual([]);
      if (!manifest) throw new Error('no manifest');
      expect(manifest.tables.map((t) => t.name)).not.toContain('aaa_export_probe');
      await expectCountsMatch(manifest, files);
    } finally {
      await h.t.owner.script('drop table aaa_export_probe');
    }
  });

  it('marks an export failed after five consecutive failed steps, and deletes what it had written', async () => {
    const res = await owner.call('POST', url());
    expect(res.statusCode, res.body).toBe(202);
    const id = res.json<ExportView>().id;
    const s = h.built.services;
    // One step starts it (the file is made), then the file is lost: every later step fails.
    await s.archives.step(acme, id);
    rmSync(archivePath(dir, acme, id));
    await s.exportJob.drain();
    const failed = (await owner.call('GET', url(`/${id}`))).json<ExportView>();
    expect(failed.state).toBe('failed');
    expect(failed.error).toBeTruthy();
    expect(code(await owner.call('POST', url(`/${id}/link`)))).toBe('conflict');
    // Nothing is left in flight: a new export can be asked for.
    expect((await owner.call('POST', url())).statusCode).toBe(202);
    await s.exportJob.drain();
  });

  it('deletes archives at the end of their retention', async () => {
    const view = await finishedExport();
    const link = await linkFor(view.id);
    h.clock.advance(8 * 86_400_000);
    await h.built.services.exportJob.drain();
    owner = await signedIn(h, h.user('acme', 'owner').email);
    expect((await owner.call('GET', url(`/${view.id}`))).json<ExportView>().state).toBe('expired');
    expect(() => statSync(archivePath(dir, acme, view.id))).toThrow();
    expect(code(await download(link))).toBe('token_invalid');
  });

  it('keeps an org\u2019s newest archives only: asking for another expires the oldest beyond them', async () => {
    const views: ExportView[] = [];
    for (let i = 0; i < ARCHIVES_KEPT + 1; i++) {
      h.clock.advance(1000);
      owner = await signedIn(h, h.user('acme', 'owner').email);
      views.push(await finishedExport());
    }
    await h.built.services.exportJob.drain();
    const live = (await owner.call('GET', url())).json<{ exports: ExportView[] }>().exports.filter((e) => e.state === 'done');
    expect(live.length).toBe(ARCHIVES_KEPT);
    expect(live.map((e) => e.id)).not.toContain(views[0]?.id);
    expect(() => statSync(archivePath(dir, acme, views[0]?.id ?? ''))).toThrow();
  });

  it('still exports while the org awaits its shredding, and the shredding takes its archives with it', async () => {
    owner = await signedIn(h, h.user('acme', 'owner').email);
    const del = await h.built.app.inject({ method: 'DELETE', url: `/api/orgs/${acme}`, headers: { cookie: owner.cookie, origin: ORIGIN }, payload: { confirm: 'acme' } });
    expect(del.statusCode, del.body).toBe(202);
    // The deletion signed every member out of the org: the owner signs in again.
    owner = await signedIn(h, h.user('acme', 'owner').email);
    const view = await finishedExport();
    expect((await download(await linkFor(view.id))).statusCode).toBe(200);
    const unused = await linkFor(view.id);
    // The grace period ends: the data-key job shreds the org, then the export job deletes its archives.
    h.clock.advance(31 * 86_400_000);
    const s = h.built.services;
    await createDataKeyJob({ db: h.t.db, clock: h.clock, logger: h.logger, keys: s.dataKeys, shredder: s.shredder }).drain();
    expect(code(await download(unused))).toBe('token_invalid');
    await s.exportJob.drain();
    const states = await h.t.owner.query<{ state: string }>(`select distinct state from org_exports where org_id = $1 and state <> 'failed'`, [acme]);
    expect(states.map((r) => r.state)).toEqual(['expired']);
    expect(() => statSync(archivePath(dir, acme, view.id))).toThrow();
  });
});
