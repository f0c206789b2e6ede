/**
 * The archive check (src/domains/files/archive.ts) on zips built to attack it: zip-slip names,
 * a compression bomb, nested bombs, nesting too deep, 10,000 entries, entries sharing their data,
 * executables and encrypted entries inside; read through a range reader, as from sealed storage.
 */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/kernel/errors.js';
import { DEFAULT_ARCHIVE_LIMITS, inspectZip, type RandomAccess } from '../../src/domains/files/archive.js';
import { buildZip } from '../support/zip.js';

const source = (b: Buffer): RandomAccess & { reads: number } => {
  const s = { size: b.length, reads: 0, readAt: (o: number, l: number) => (s.reads++, Promise.resolve(b.subarray(o, o + l))) };
  return s;
};

async function refusal(b: Buffer, limits = DEFAULT_ARCHIVE_LIMITS): Promise<string> {
  const err = await inspectZip(source(b), limits).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  expect((err as AppError).code).toBe('unsupported_media_type');
  return (err as AppError).detail ?? '';
}

const text = (s: string) => Buffer.from(s);

describe('archive check', () => {
  it('accepts an ordinary zip, nested zips included, and counts what it holds', async () => {
    const inner = buildZip([{ name: 'data/q3.csv', data: text('a,b\n1,2\n'), deflate: true }]);
    const zip = buildZip([{ name: 'docs/', data: Buffer.alloc(0) }, { name: 'docs/readme.txt', data: text('hello') }, { name: 'inner.zip', data: inner }]);
    expect(await inspectZip(source(zip))).toEqual({ entries: 4, uncompressedBytes: 5 + inner.length + 8, nestedArchives: 1 });
  });

  it('refuses names that leave the root or hide characters', async () => {
    for (const name of ['../evil.txt', 'a/../../evil.txt', '/etc/passwd', 'C:/x.txt', 'a\\..\\b.txt', 'rtl\u202efdp.txt', 'nul\u0000.txt']) {
      expect(await refusal(buildZip([{ name, data: text('x') }])), name).toMatch(/outside its root|cannot be read/);
    }
  });

  it('refuses executables and scripts inside, at any depth', async () => {
    expect(await refusal(buildZip([{ name: 'setup/install.exe', data: text('MZ') }]))).toContain('.exe');
    const inner = buildZip([{ name: 'run.ps1', data: text('Write-Host') }]);
    expect(await refusal(buildZip([{ name: 'ok.txt', data: text('x') }, { name: 'more.zip', data: inner }]))).toContain('.ps1');
  });

  it('refuses a compression bomb, and one nested inside a zip (42.zip style)', async () => {
    const bomb = buildZip([{ name: 'zeros.dat', data: Buffer.alloc(20 * 1024 * 1024), deflate: true }]);
    expect(bomb.length).toBeLessThan(100 * 1024);
    expect(await refusal(bomb)).toContain('compression bomb');
    const layered = buildZip(Array.from({ length: 4 }, (_, i) => ({ name: `layer${i}.zip`, data: bomb, deflate: true })));
    expect(await refusal(layered)).toContain('compression bomb');
  });

  it('refuses archives nested deeper than the limit, and a total size above it', async () => {
    let zip = buildZip([{ name: 'core.txt', data: text('x') }]);
    for (let i = 0; i < 4; i++) zip = buildZip([{ name: `level${i}.zip`, data: zip }]);
    expect(await refusal(zip)).toContain('nested more than 3');
    const big = buildZip([{ name: 'a.txt', data: Buffer.alloc(3000, 0x61) }, { name: 'b.txt', data: Buffer.alloc(3000, 0x62) }]);
    expect(await refusal(big, { ...DEFAULT_ARCHIVE_LIMITS, maxTotalBytes: 5000 })).toContain('expands to more than 5000');
  });

  it('refuses 10,000 entries from the directory\u2019s count, before reading them', async () => {
    const many = buildZip(Array.from({ length: 10_000 }, (_, i) => ({ name: `f${i}.txt`, data: text('x') })));
    const s = source(many);
    const err = await inspectZip(s).then(() => null, (e: unknown) => e as AppError);
    expect(err?.detail).toContain('more than 5000 entries');
    expect(s.reads).toBeLessThan(5);
  });

  it('refuses entries that share their data (the overlapping-entry bomb)', async () => {
    const kernel = { name: 'kernel.dat', data: Buffer.alloc(512 * 1024, 0x41), deflate: true };
    const zip = buildZip([kernel], Array.from({ length: 50 }, (_, i) => ({ name: `copy${i}.dat`, of: 0 })));
    expect(await refusal(zip)).toContain('share their data');
  });

  it('refuses encrypted entries, and what is not a zip at all', async () => {
    expect(await refusal(buildZip([{ name: 'secret.txt', data: text('x'), encryptedFlag: true }]))).toContain('encrypted');
    expect(await refusal(text('PK\u0003\u0004 not really a zip'))).toContain('cannot be read');
    const cut = buildZip([{ name: 'a.txt', data: text('hello') }]);
    expect(await refusal(cut.subarray(0, cut.length - 30))).toContain('cannot be read');
  });

  // Attacker review, finding 1: what is nested is decided by the bytes, not the name.
  it('opens a zip inside whatever its name, so depth, encryption and bombs are seen through a renamed layer', async () => {
    let zip = buildZip([{ name: 'core.txt', data: text('x') }]);
    for (let i = 0; i < 4; i++) zip = buildZip([{ name: `l${i}.dat`, data: zip }]);
    expect(await refusal(zip)).toContain('nested more than 3');
    const encrypted = buildZip([{ name: 'eicar.txt', data: text('x'), encryptedFlag: true }]);
    expect(await refusal(buildZip([{ name: 'payload.dat', data: encrypted }]))).toContain('encrypted');
    const bomb = buildZip([{ name: 'zeros.dat', data: Buffer.alloc(20 * 1024 * 1024), deflate: true }]);
    expect(await refusal(buildZip([{ name: 'inner.dat', data: bomb }]))).toContain('compression bomb');
  });

  it('refuses programs and archives it cannot open inside, whatever their names', async () => {
    const pe = Buffer.concat([text('MZ'), Buffer.alloc(126)]);
    expect(await refusal(buildZip([{ name: 'notes.txt', data: pe }]))).toContain('a program');
    expect(await refusal(buildZip([{ name: 'linux.dat', data: Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]) }]))).toContain('a program');
    expect(await refusal(buildZip([{ name: 'logs.dat', data: Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0]) }]))).toContain('cannot be inspected');
  });

  // Attacker review, finding 3: every name an extractor may use is checked.
  it('refuses names that differ between the central directory, the Unicode Path field and the local header', async () => {
    expect(await refusal(buildZip([{ name: 'run.exe', data: text('x'), unicodePath: 'readme.txt' }]))).toMatch(/twice, differently|\.exe/);
    expect(await refusal(buildZip([{ name: 'fine.txt', localName: '../../evil.exe', data: text('x') }]))).toContain('differently in two places');
  });

  it('holds each part of an entry\u2019s path to the upload name rules', async () => {
    for (const name of ['run.exe.', 'run.exe ', 'notes.txt::$DATA', 'shell.php.jpg', 'docs/con.txt']) {
      expect(await refusal(buildZip([{ name, data: text('x') }])), name).toContain('the archive holds');
    }
  });

  // Attacker review, finding 8: what the archive names never reaches a message raw.
  it('quotes names and library messages without their hidden characters', async () => {
    const detail = await refusal(buildZip([{ name: 'a\u001b[31m\u202ex.exe', data: text('x') }]));
    // eslint-disable-next-line no-control-regex -- control characters are what must not appear
    expect(detail).not.toMatch(/[\u0000-\u001f\u202e]/u);
  });
});
