import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ORIGIN, type TestApp } from '../support/app.js';
import { clamdMissing, EICAR, EICAR_SIGNATURE, startClamd, type Clamd } from '../support/clamd.js';
import { code } from '../support/client.js';
import { ENGINES } from '../support/db.js';
import { audit } from '../support/evidence.js';
import { BOUNDARY, multipart, MULTIPART_TYPE, oneFile } from '../support/multipart.js';
import { PassThrough } from 'node:stream';
import { buildZip, yazlZip } from '../support/zip.js';
import { startS3 } from '../support/s3.js';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';

/**
 * Uploads end to end (issue 16) against a real clamd (one EICAR signature, test/support/clamd.ts)
 * and the disk store: what passes every check is kept sealed and served back as an attachment;
 * every refusal (size, quota, name, content, archive, malware, no scanner, a malformed body)
 * is a clear 4xx or a 503, leaves no byte on disk, no row and no reservation, and is audited.
 */

const skip = clamdMissing();
const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
const KIB = 1024;

describe.skipIf(skip).each(ENGINES)('uploads on %s', (engine) => {
  let h: TestApp;
  let clamd: Clamd;
  let dir: string;
  let acme: string;
  let project: string;
  let otherProject: string;
  let globex: string;
  let globexProject: string;

  const base = (org = acme, p = project) => `/api/orgs/${org}/projects/${p}/files`;
  const upload = async (body: Buffer, o: { as?: string; org?: string; project?: string; headers?: Record<string, string> } = {}): Promise<LightMyRequestResponse> =>
    h.built.app.inject({
      method: 'POST', url: base(o.org, o.project), payload: body,
      headers: { cookie: await h.cookieFor(o.as ?? h.user('acme', 'member').email), origin: ORIGIN, 'content-type': MULTIPART_TYPE, ...o.headers },
    });
  const get = async (url: string, as = h.user('acme', 'member').email) => h.built.app.inject({ method: 'GET', url, headers: { cookie: await h.cookieFor(as) } });
  /** Every file the store holds for acme (finished or partial). */
  const stored = () => (existsSync(join(dir, acme)) ? readdirSync(join(dir, acme)) : []);
  const rowsOf = async (org = acme) => (await h.t.owner.query<{ state: string; reserved_bytes: string }>('select state, reserved_bytes::text as reserved_bytes from files where org_id = $1', [org]));
  const usage = async (org = acme) => Number((await h.t.owner.query<{ bytes: string }>('select bytes::text as bytes from org_file_usage where org_id = $1', [org]))[0]?.bytes ?? 0);
  async function expectNothingKept(res: LightMyRequestResponse, status: number, problem: string): Promise<void> {
    expect(res.statusCode, res.body).toBe(status);
    expect(code(res)).toBe(problem);
    expect(stored()).toEqual([]);
    expect(await rowsOf()).toEqual([]);
    expect(await usage()).toBe(0);
  }

  /** Deletes every file of the project (a test that keeps files leaves the next one a clean slate). */
  async function removeAll(): Promise<void> {
    const files = (await get(base())).json<{ files: { id: string }[] }>().files;
    for (const f of files) {
      await h.built.app.inject({ method: 'DELETE', url: `${base()}/${f.id}`, headers: { cookie: await h.cookieFor(h.user('acme', 'member').email), origin: ORIGIN } });
    }
  }

  beforeAll(async () => {
    clamd = await startClamd();
    dir = mkdtempSync(join(tmpdir(), 'palisade-files-'));
    h = await createTestApp(engine, {
      config: {
        PALISADE_CLAMD: `tcp://127.0.0.1:${clamd.port}`,
        PALISADE_CLAMD_TIMEOUT_MS: '1500',
        PALISADE_FILE_DIR: dir,
        PALISADE_UPLOAD_PLANS: 'free=4M/10M,team=200M/1G',
      },
    });
    acme = h.orgId('acme');
    globex = h.orgId('globex');
    const acmeOrg = h.demo.orgs.find((o) => o.slug === 'acme');
    project = acmeOrg?.projects[0]?.id ?? '';
    otherProject = acmeOrg?.projects[1]?.id ?? '';
    globexProject = h.demo.orgs.find((o) => o.slug === 'globex')?.projects[0]?.id ?? '';
  }, 120_000);

  afterAll(async () => {
    await h?.close();
    await clamd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps a clean file sealed on disk and serves it back as an attachment, audited', async () => {
    const text = `quarterly numbers ${'x'.repeat(200 * KIB)} end`;
    const res = await upload(oneFile('Report Q3 — final.csv', text, 'text/csv'));
    expect(res.statusCode, res.body).toBe(201);
    const file = res.json<{ id: string; name: string; contentType: string; sizeBytes: number; scanned: boolean }>();
    expect(file).toMatchObject({ name: 'Report Q3 — final.csv', contentType: 'text/csv', sizeBytes: Buffer.byteLength(text), scanned: true });
    // On disk: ids only, sealed (the text appears nowhere), private.
    const path = join(dir, acme, file.id);
    expect(stored()).toEqual([file.id]);
    expect(readFileSync(path).includes(Buffer.from('quarterly numbers'))).toBe(false);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const list = await get(base());
    expect(list.json<{ files: { id: string }[]; limits: { usedBytes: number } }>()).toMatchObject({ files: [{ id: file.id }], limits: { usedBytes: Buffer.byteLength(text) } });
    const down = await get(`${base()}/${file.id}/content`);
    expect(down.statusCode).toBe(200);
    expect(down.body).toBe(text);
    expect(down.headers['content-disposition']).toBe(`attachment; filename="Report Q3 _ final.csv"; filename*=UTF-8''Report%20Q3%20%E2%80%94%20final.csv`);
    expect(down.headers['x-content-type-options']).toBe('nosniff');
    expect(String(down.headers['content-type'])).toMatch(/^text\/csv/);
    expect(await audit(h, acme, 'file.uploaded', file.id)).toHaveLength(1);
    expect(await audit(h, acme, 'file.downloaded', file.id)).toHaveLength(1);
    // Deleting releases the bytes and the quota.
    const del = await h.built.app.inject({ method: 'DELETE', url: `${base()}/${file.id}`, headers: { cookie: await h.cookieFor(h.user('acme', 'member').email), origin: ORIGIN } });
    expect(del.statusCode).toBe(204);
    expect(stored()).toEqual([]);
    expect(await usage()).toBe(0);
    expect(await audit(h, acme, 'file.deleted', file.id)).toHaveLength(1);
  });

  it('hands out no byte of a file whose download could not be audited (no audit, no download)', async () => {
    const res = await upload(oneFile('unaudited.csv', 'NOT-WITHOUT-EVIDENCE', 'text/csv'));
    expect(res.statusCode, res.body).toBe(201);
    const id = res.json<{ id: string }>().id;
    await h.t.owner.script(`create function t_fail() returns trigger language plpgsql as $$ begin raise exception 'audit store down'; end $$;
      create trigger t_fail before insert on audit_events for each row when (new.action = 'file.downloaded') execute function t_fail();`);
    try {
      const down = await get(`${base()}/${id}/content`);
      expect(down.statusCode).toBe(500);
      expect(down.body).not.toContain('NOT-WITHOUT-EVIDENCE');
      expect(down.body).not.toContain('audit store down');
    } finally {
      await h.t.owner.script('drop trigger t_fail on audit_events; drop function t_fail()');
    }
    expect(await audit(h, acme, 'file.downloaded', id)).toHaveLength(0);
    expect((await get(`${base()}/${id}/content`)).body).toBe('NOT-WITHOUT-EVIDENCE');
    await removeAll();
  });

  it('refuses EICAR plain, in a zip and in a zip in a zip (422), keeping nothing, and audits the signature', async () => {
    await expectNothingKept(await upload(oneFile('notes.txt', EICAR, 'text/plain')), 422, 'malware_detected');
    const zipped = await yazlZip([{ name: 'readme.txt', data: Buffer.from('hello') }, { name: 'eicar.txt', data: EICAR }]);
    await expectNothingKept(await upload(oneFile('bundle.zip', zipped, 'application/zip')), 422, 'malware_detected');
    const nested = await yazlZip([{ name: 'inner.zip', data: zipped }]);
    const res = await upload(oneFile('outer.zip', nested, 'application/zip'));
    await expectNothingKept(res, 422, 'malware_detected');
    const refusals = await audit(h, acme, 'file.refused');
    expect(refusals.length).toBeGreaterThanOrEqual(3);
    expect(JSON.stringify(refusals)).toContain(EICAR_SIGNATURE);
  });

  it('refuses a 42.zip-style bomb, zip-slip names and a 10,000-entry zip (415) before they are kept', async () => {
    const bomb = buildZip([{ name: 'zeros.dat', data: Buffer.alloc(20 * 1024 * 1024), deflate: true }]);
    const layered = buildZip(Array.from({ length: 4 }, (_, i) => ({ name: `layer${i}.zip`, data: bomb, deflate: true })));
    expect(layered.length).toBeLessThan(100 * KIB);
    await expectNothingKept(await upload(oneFile('layers.zip', layered, 'application/zip')), 415, 'unsupported_media_type');
    const slip = buildZip([{ name: '../../etc/cron.d/evil', data: Buffer.from('x') }]);
    await expectNothingKept(await upload(oneFile('slip.zip', slip, 'application/zip')), 415, 'unsupported_media_type');
    const many = buildZip(Array.from({ length: 10_000 }, (_, i) => ({ name: `f${i}.txt`, data: Buffer.from('x') })));
    await expectNothingKept(await upload(oneFile('many.zip', many, 'application/zip')), 415, 'unsupported_media_type');
  });

  // Attacker review, finding 7: a check of the head alone let a program or a zip follow it.
  it('holds text to being text to its end, and inspects a file that also ends as a zip', async () => {
    const head = Buffer.alloc(70 * KIB, 'a');
    await expectNothingKept(await upload(oneFile('notes.txt', Buffer.concat([head, Buffer.from([0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0])]), 'text/plain')), 415, 'unsupported_media_type');
    await expectNothingKept(await upload(oneFile('data.csv', Buffer.concat([head, Buffer.from([0xff, 0xfe, 0xfd])]), 'text/csv')), 415, 'unsupported_media_type');
    const zipWithProgram = buildZip([{ name: 'run.exe', data: Buffer.from('MZ') }]);
    await expectNothingKept(await upload(oneFile('logo.png', Buffer.concat([PNG, zipWithProgram]), 'image/png')), 415, 'unsupported_media_type');
    // A PNG that merely holds the four bytes of a zip's end record is still a PNG.
    const innocent = await upload(oneFile('chart.png', Buffer.concat([PNG, Buffer.from('PK\u0005\u0006 not a zip')]), 'image/png'));
    expect(innocent.statusCode, innocent.body).toBe(201);
    await removeAll();
  });

  it('refuses content that lies about its type, and names that are tricks (415 and 400)', async () => {
    await expectNothingKept(await upload(oneFile('scan.pdf', PNG, 'application/pdf')), 415, 'unsupported_media_type');
    await expectNothingKept(await upload(oneFile('logo.png', PNG, 'text/html')), 415, 'unsupported_media_type');
    await expectNothingKept(await upload(oneFile('page.txt', Buffer.from([0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0]), 'text/plain')), 415, 'unsupported_media_type');
    // `say %22hi%22.txt`: how browsers and curl send `say "hi".txt`; the quote is seen and refused.
    for (const name of ['../../etc/passwd', 'invoice.exe', 'photo\u202egnp.exe', 'report.pdf.', 'con.txt', 'run.ps1', 'say %22hi%22.txt', 'a%0D%0AContent-Type: x.txt']) {
      await expectNothingKept(await upload(oneFile(name, 'hello', 'text/plain')), 400, 'validation_failed');
    }
  });

  it('stops a file past the plan\u2019s limit while it streams (413), keeping nothing and releasing the reservation', async () => {
    const big = Buffer.alloc(4 * 1024 * 1024 + 1, 'a');
    await expectNothingKept(await upload(oneFile('big.txt', big, 'text/plain')), 413, 'payload_too_large');
    // Without a Content-Length to refuse it early: the stream itself is cut at the limit.
    const { Readable } = await import('node:stream');
    const res = await h.built.app.inject({
      method: 'POST', url: base(), payload: Readable.from([oneFile('big.txt', big, 'text/plain')]),
      headers: { cookie: await h.cookieFor(h.user('acme', 'member').email), origin: ORIGIN, 'content-type': MULTIPART_TYPE },
    });
    await expectNothingKept(res, 413, 'payload_too_large');
  });

  it('refuses a body that is not exactly one file part: truncated, no file name, two files, a field (400)', async () => {
    await expectNothingKept(await upload(multipart([{ fileName: 'a.txt', data: 'hello', type: 'text/plain' }], { close: false })), 400, 'malformed_request');
    await expectNothingKept(await upload(multipart([{ data: 'hello' }])), 400, 'validation_failed');
    const two = multipart([{ fileName: 'a.txt', data: 'one', type: 'text/plain' }, { fileName: 'b.txt', data: 'two', type: 'text/plain' }]);
    await expectNothingKept(await upload(two), 400, 'validation_failed');
    await expectNothingKept(await upload(multipart([{ field: 'note', data: 'x' }, { fileName: 'a.txt', data: 'one', type: 'text/plain' }])), 400, 'validation_failed');
    const json = await h.built.app.inject({
      method: 'POST', url: base(), payload: { name: 'a.txt' },
      headers: { cookie: await h.cookieFor(h.user('acme', 'member').email), origin: ORIGIN },
    });
    expect(json.statusCode).toBe(415);
  });

  it('lets only one of two concurrent uploads take the last of the quota', async () => {
    // 10 MiB quota: 3 files of 3 MiB fit, a fourth and fifth race for the last 1 MiB + change.
    for (let i = 0; i < 3; i++) expect((await upload(oneFile(`fill${i}.txt`, Buffer.alloc(3 * 1024 * 1024, 'f'), 'text/plain'))).statusCode).toBe(201);
    const racer = Buffer.alloc(700 * KIB, 'r');
    const [a, b] = await Promise.all([upload(oneFile('a.txt', racer, 'text/plain')), upload(oneFile('b.txt', racer, 'text/plain'))]);
    expect([a.statusCode, b.statusCode].sort()).toEqual([201, 413]);
    expect(code(a.statusCode === 413 ? a : b)).toBe('quota_exceeded');
    expect(await usage()).toBe(9 * 1024 * 1024 + 700 * KIB);
    expect((await rowsOf()).every((r) => r.state === 'available')).toBe(true);
    await removeAll();
    expect(await usage()).toBe(0);
  });

  it('refuses uploads with 503 and Retry-After while clamd is stopped or too slow, keeping nothing', async () => {
    clamd.pause();
    try {
      const res = await upload(oneFile('slow.txt', 'hello while clamd is stopped', 'text/plain'));
      await expectNothingKept(res, 503, 'scanner_unavailable');
      expect(res.headers['retry-after']).toBe('30');
    } finally {
      clamd.resume();
    }
    const metrics = await h.built.metrics.render();
    expect(metrics).toMatch(/palisade_upload_scanner_unavailable_total\{reason="timeout"\} 1/);
    expect(h.logs.join('\n')).toContain('malware scanner unavailable');
    // Back: uploads work again.
    expect((await upload(oneFile('again.txt', 'hello again', 'text/plain'))).statusCode).toBe(201);
    await removeAll();
  });

  it('holds a project to its own list of file types, which can never admit an executable', async () => {
    const put = async (extensions: string[] | null) => h.built.app.inject({
      method: 'PUT', url: `/api/orgs/${acme}/projects/${project}/file-types`, payload: { extensions },
      headers: { cookie: await h.cookieFor(h.user('acme', 'admin').email), origin: ORIGIN },
    });
    expect((await put(['PDF', 'png'])).json()).toEqual({ extensions: ['pdf', 'png'] });
    await expectNothingKept(await upload(oneFile('notes.txt', 'hello', 'text/plain')), 400, 'validation_failed');
    expect((await upload(oneFile('logo.png', PNG, 'image/png'))).statusCode).toBe(201);
    const refused = await put(['pdf', 'exe']);
    expect(refused.statusCode).toBe(400);
    expect(refused.json<{ detail: string }>().detail).toContain('.exe');
    expect((await put(null)).json()).toEqual({ extensions: null });
    await removeAll();
  });

  it('removes the bytes of a deleted project\u2019s files from the store at the org\u2019s next upload', async () => {
    const owner = await h.cookieFor(h.user('acme', 'owner').email);
    const created = await h.built.app.inject({ method: 'POST', url: `/api/orgs/${acme}/projects`, payload: { name: 'short-lived' }, headers: { cookie: owner, origin: ORIGIN } });
    const doomed = created.json<{ id: string }>().id;
    const res = await upload(oneFile('old.txt', 'soon gone', 'text/plain'), { as: h.user('acme', 'owner').email, project: doomed });
    const id = res.json<{ id: string }>().id;
    expect(stored()).toContain(id);
    expect((await h.built.app.inject({ method: 'DELETE', url: `/api/orgs/${acme}/projects/${doomed}`, headers: { cookie: owner, origin: ORIGIN } })).statusCode).toBe(204);
    expect(await usage()).toBe(0);
    // The next upload of the org clears what the cascade left.
    const next = await upload(oneFile('new.txt', 'fresh', 'text/plain'));
    expect(stored()).toEqual([next.json<{ id: string }>().id]);
    expect(await h.t.owner.query('select * from files_gone where org_id = $1', [acme])).toEqual([]);
    await removeAll();
  });

  it('keeps files inside their tenant and project', async () => {
    const res = await upload(oneFile('private.txt', 'acme only', 'text/plain'));
    const id = res.json<{ id: string }>().id;
    // Another org's member, even naming acme's ids: 404 or 403, never the bytes.
    const other = await get(`${base()}/${id}/content`, h.user('globex', 'owner').email);
    expect([403, 404]).toContain(other.statusCode);
    expect((await get(`${base(globex, globexProject)}/${id}/content`, h.user('globex', 'owner').email)).statusCode).toBe(404);
    // A member restricted to the first project cannot reach the second one's files, nor upload there.
    const restricted = h.user('acme', 'restricted_member').email;
    expect((await upload(oneFile('x.txt', 'x', 'text/plain'), { as: restricted, project: otherProject })).statusCode).toBe(404);
    // A viewer reads but cannot upload.
    expect((await get(`${base()}/${id}/content`, h.user('acme', 'viewer').email)).statusCode).toBe(200);
    expect((await upload(oneFile('x.txt', 'x', 'text/plain'), { as: h.user('acme', 'viewer').email })).statusCode).toBe(403);
  });
});

describe.skipIf(skip)('uploads to an S3-compatible store (s3rver on loopback)', () => {
  it('keeps a clean file as one sealed object, serves it back, and leaves no object for a refusal or a deletion', async () => {
    const clamd = await startClamd();
    const s3 = await startS3();
    const h = await createTestApp('postgres', {
      config: {
        PALISADE_CLAMD: `tcp://127.0.0.1:${clamd.port}`, PALISADE_FILE_STORE: 's3', PALISADE_S3_BUCKET: s3.bucket, PALISADE_S3_PREFIX: 'files/',
        PALISADE_S3_ENDPOINT: s3.client.endpoint, PALISADE_S3_FORCE_PATH_STYLE: 'true', PALISADE_S3_ACCESS_KEY_ID: 'S3RVER', PALISADE_S3_SECRET_ACCESS_KEY: 'S3RVER',
      },
    });
    const client = new S3Client(s3.client);
    const objects = async () => ((await client.send(new ListObjectsV2Command({ Bucket: s3.bucket }))).Contents ?? []).map((o) => o.Key);
    try {
      const acme = h.orgId('acme');
      const project = h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id ?? '';
      const cookie = await h.cookieFor(h.user('acme', 'member').email);
      const send = (body: Buffer) => h.built.app.inject({
        method: 'POST', url: `/api/orgs/${acme}/projects/${project}/files`, payload: body, headers: { cookie, origin: ORIGIN, 'content-type': MULTIPART_TYPE },
      });
      const text = `${'evidence '.repeat(120_000)}end`;
      const res = await send(oneFile('evidence.txt', text, 'text/plain'));
      expect(res.statusCode, res.body).toBe(201);
      const id = res.json<{ id: string }>().id;
      expect(await objects()).toEqual([`files/${acme}/${id}`]);
      const down = await h.built.app.inject({ method: 'GET', url: `/api/orgs/${acme}/projects/${project}/files/${id}/content`, headers: { cookie } });
      expect(down.body).toBe(text);
      expect((await send(oneFile('eicar.txt', EICAR, 'text/plain'))).statusCode).toBe(422);
      expect(await objects()).toEqual([`files/${acme}/${id}`]);
      await h.built.app.inject({ method: 'DELETE', url: `/api/orgs/${acme}/projects/${project}/files/${id}`, headers: { cookie, origin: ORIGIN } });
      expect(await objects()).toEqual([]);
    } finally {
      client.destroy();
      await h.close();
      await s3.stop();
      await clamd.stop();
    }
  }, 120_000);
});

// Attacker review, finding 2: slow uploads held clamd's queue and stopped every tenant's uploads.
describe.skipIf(skip)('uploads held open by a slow client', () => {
  it('are limited per org while in flight, and stopped when they fall below the minimum rate', async () => {
    const clamd = await startClamd();
    const dir = mkdtempSync(join(tmpdir(), 'palisade-files-'));
    const h = await createTestApp('postgres', { config: { PALISADE_CLAMD: `tcp://127.0.0.1:${clamd.port}`, PALISADE_FILE_DIR: dir, PALISADE_UPLOAD_CONCURRENCY: '16', PALISADE_UPLOAD_GRACE_SECONDS: '5' } });
    try {
      const acme = h.orgId('acme');
      const project = h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id ?? '';
      const cookie = await h.cookieFor(h.user('acme', 'member').email);
      const head = Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\nContent-Type: text/plain\r\n\r\n`);
      const open = () => {
        const body = new PassThrough();
        body.write(head);
        body.write('a little');
        const res = h.built.app.inject({ method: 'POST', url: `/api/orgs/${acme}/projects/${project}/files`, payload: body, headers: { cookie, origin: ORIGIN, 'content-type': MULTIPART_TYPE } });
        return { body, res };
      };
      // An eighth of 16 is 2 per org: a third at once is refused, with Retry-After.
      const slow = [open(), open()];
      await new Promise((r) => setTimeout(r, 500));
      const third = await h.built.app.inject({
        method: 'POST', url: `/api/orgs/${acme}/projects/${project}/files`, payload: oneFile('c.txt', 'third', 'text/plain'),
        headers: { cookie, origin: ORIGIN, 'content-type': MULTIPART_TYPE },
      });
      expect(third.statusCode, third.body).toBe(429);
      expect(third.headers['retry-after']).toBe('10');
      // Another org is not held back by acme's.
      const globex = h.orgId('globex');
      const globexProject = h.demo.orgs.find((o) => o.slug === 'globex')?.projects[0]?.id ?? '';
      const other = await h.built.app.inject({
        method: 'POST', url: `/api/orgs/${globex}/projects/${globexProject}/files`, payload: oneFile('g.txt', 'globex', 'text/plain'),
        headers: { cookie: await h.cookieFor(h.user('globex', 'member').email), origin: ORIGIN, 'content-type': MULTIPART_TYPE },
      });
      expect(other.statusCode, other.body).toBe(201);
      // Past the grace period, far below the minimum rate: stopped, nothing kept.
      for (const s of slow) s.body.write('.');
      const stopped = await Promise.all(slow.map((s) => s.res));
      expect(stopped.map((r) => r.statusCode)).toEqual([400, 400]);
      expect(stopped[0]?.json<{ detail: string }>().detail).toContain('slower than');
      expect(existsSync(join(dir, acme)) ? readdirSync(join(dir, acme)) : []).toEqual([]);
      for (const s of slow) s.body.destroy();
      // The slots are free again.
      const after = await h.built.app.inject({
        method: 'POST', url: `/api/orgs/${acme}/projects/${project}/files`, payload: oneFile('d.txt', 'after', 'text/plain'),
        headers: { cookie, origin: ORIGIN, 'content-type': MULTIPART_TYPE },
      });
      expect(after.statusCode, after.body).toBe(201);
    } finally {
      await h.close();
      await clamd.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe.skipIf(skip)('uploads larger than clamd reads', () => {
  it('are refused (413 when clamd\u2019s answer is read), counted, keeping nothing', async () => {
    const clamd = await startClamd({ streamMaxLength: '1M' });
    const dir = mkdtempSync(join(tmpdir(), 'palisade-files-'));
    const h = await createTestApp('postgres', { config: { PALISADE_CLAMD: `tcp://127.0.0.1:${clamd.port}`, PALISADE_FILE_DIR: dir, PALISADE_UPLOAD_PLANS: 'free=8M/16M' } });
    try {
      const acme = h.orgId('acme');
      const project = h.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id ?? '';
      const res = await h.built.app.inject({
        method: 'POST', url: `/api/orgs/${acme}/projects/${project}/files`, payload: oneFile('big.csv', Buffer.alloc(3 * 1024 * 1024, 'a'), 'text/csv'),
        headers: { cookie: await h.cookieFor(h.user('acme', 'member').email), origin: ORIGIN, 'content-type': MULTIPART_TYPE },
      });
      // clamd answers "size limit exceeded" and closes while the rest is still being sent: the
      // answer is read (413, retrying cannot help) unless the reset that follows wins the race and
      // discards it (503 `closed`). Either way nothing is kept and the operator's metric says so.
      const metrics = await h.built.metrics.render();
      if (res.statusCode === 413) {
        expect(res.json<{ detail: string }>().detail).toContain('larger than the malware scanner accepts');
        expect(res.headers['retry-after']).toBeUndefined();
        expect(metrics).toMatch(/palisade_upload_scanner_unavailable_total\{reason="size_limit"\} 1/);
      } else {
        expect(res.statusCode, res.body).toBe(503);
        expect(metrics).toMatch(/palisade_upload_scanner_unavailable_total\{reason="closed"\} 1/);
      }
      expect(existsSync(join(dir, acme)) ? readdirSync(join(dir, acme)) : []).toEqual([]);
    } finally {
      await h.close();
      await clamd.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe.each(ENGINES)('uploads without a scanner on %s', (engine) => {
  it('are refused by default with a message naming PALISADE_CLAMD; the development opt-out keeps them, marked unscanned', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'palisade-files-'));
    const h = await createTestApp(engine, { config: { PALISADE_FILE_DIR: dir } });
    const optOut = await createTestApp(engine, { config: { PALISADE_FILE_DIR: dir, PALISADE_UPLOADS_UNSCANNED: 'true' } });
    try {
      const send = async (app: TestApp) => {
        const acme = app.orgId('acme');
        const project = app.demo.orgs.find((o) => o.slug === 'acme')?.projects[0]?.id ?? '';
        return app.built.app.inject({
          method: 'POST', url: `/api/orgs/${acme}/projects/${project}/files`, payload: oneFile('a.txt', 'hello', 'text/plain'),
          headers: { cookie: await app.cookieFor(app.user('acme', 'member').email), origin: ORIGIN, 'content-type': MULTIPART_TYPE },
        });
      };
      const refused = await send(h);
      expect(refused.statusCode).toBe(503);
      expect(refused.json<{ detail: string }>().detail).toContain('PALISADE_CLAMD');
      // Not an outage that passes: nothing says to retry.
      expect(refused.headers['retry-after']).toBeUndefined();
      expect(readdirSync(dir)).toEqual([]);
      const kept = await send(optOut);
      expect(kept.statusCode, kept.body).toBe(201);
      expect(kept.json<{ scanned: boolean }>().scanned).toBe(false);
    } finally {
      await h.close();
      await optOut.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
