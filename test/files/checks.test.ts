/**
 * The name and content checks of an upload (src/domains/files/names.ts, content.ts): what a file
 * may be called, and whether its bytes are what its name and declared type say.
 */
import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/kernel/errors.js';
import { yazlZip } from '../support/zip.js';
import { checkContent } from '../../src/domains/files/content.js';
import { checkFileName, DENIED_EXTENSIONS, MAX_NAME_BYTES } from '../../src/domains/files/names.js';

function refusal(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    return err as AppError;
  }
  throw new Error('not refused');
}

async function refused(p: Promise<unknown>): Promise<AppError> {
  const err = await p.then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(AppError);
  return err as AppError;
}


const PNG = Buffer.concat([Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex'), Buffer.alloc(64)]);
const JPEG = Buffer.concat([Buffer.from('ffd8ffe000104a46494600010100000100010000', 'hex'), Buffer.alloc(64)]);
const PDF = Buffer.from('%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n');
const EXE = Buffer.concat([Buffer.from('MZ'), Buffer.alloc(200)]);
const ELF = Buffer.concat([Buffer.from('7f454c46020101', 'hex'), Buffer.alloc(200)]);

describe('file names', () => {
  it('accepts ordinary names, in NFC, with their last extension', () => {
    expect(checkFileName('report.pdf')).toEqual({ name: 'report.pdf', extension: 'pdf' });
    expect(checkFileName('Q3 results (final).XLSX')).toEqual({ name: 'Q3 results (final).XLSX', extension: 'xlsx' });
    expect(checkFileName('invoice from acme.com.pdf').extension).toBe('pdf');
    expect(checkFileName('README')).toEqual({ name: 'README', extension: '' });
    expect(checkFileName('.gitignore').extension).toBe('');
    const decomposed = 'donne\u0301es.csv';
    expect(checkFileName(decomposed).name).toBe('donn\u00e9es.csv');
  });

  it('refuses paths, controls, invisible and direction-changing characters, Windows traps', () => {
    const bad = [
      '', 'a/b.txt', 'a\\b.txt', '../etc/passwd', '.', '..', 'x\u0000.txt', 'tab\t.txt', 'new\nline.txt', 'del\u007f.txt',
      'invoice\u202efdp.exe', 'invoice\u202Efdp.pdf', 'isolate\u2066.pdf', 'zero\u200bwidth.txt', 'bom\ufeff.txt', 'mark\u200f.pdf',
      'report.pdf.', 'report.pdf ', ' report.pdf', 'a:b.txt', 'what?.txt', 'star*.txt', 'pipe|.txt', 'quote".txt', '<x>.txt',
      'con', 'CON.txt', 'nul.tar.gz', 'lpt1.log', 'COM9', 'x'.repeat(MAX_NAME_BYTES - 3) + '.txt', '\u00e9'.repeat(130) + '.txt',
    ];
    for (const name of bad) expect(refusal(() => checkFileName(name)).code, JSON.stringify(name)).toBe('validation_failed');
  });

  it('refuses executable and script types by their last extension (50+), and server-side scripts anywhere', () => {
    expect(DENIED_EXTENSIONS.size).toBeGreaterThanOrEqual(50);
    for (const ext of ['exe', 'dll', 'scr', 'bat', 'cmd', 'ps1', 'vbs', 'js', 'jar', 'msi', 'lnk', 'hta', 'sh', 'docm', 'iso', 'php', 'apk']) {
      expect(refusal(() => checkFileName(`file.${ext}`)).detail, ext).toContain(`.${ext}`);
      expect(refusal(() => checkFileName(`FILE.${ext.toUpperCase()}`)).code).toBe('validation_failed');
    }
    expect(refusal(() => checkFileName('shell.php.jpg')).detail).toContain('.php');
    expect(refusal(() => checkFileName('photo.jpg.exe')).detail).toContain('.exe');
    expect(checkFileName('notes.com.txt').extension).toBe('txt');
  });

  it('keeps to a project\u2019s allowlist, which never lets a denied type in', () => {
    expect(checkFileName('a.pdf', ['pdf', 'csv']).extension).toBe('pdf');
    expect(refusal(() => checkFileName('a.png', ['pdf', 'csv'])).detail).toContain('.png');
    expect(refusal(() => checkFileName('README', ['pdf'])).code).toBe('validation_failed');
    expect(refusal(() => checkFileName('a.exe', ['exe'])).detail).toContain('executable');
  });
});

describe('file content', () => {
  it('takes the type from the bytes when they agree with the name and the declared type', async () => {
    expect(await checkContent(PNG, 'png', 'image/png')).toEqual({ contentType: 'image/png', archive: null, active: false, text: false });
    expect((await checkContent(JPEG, 'jpeg', 'image/jpg')).contentType).toBe('image/jpeg');
    expect((await checkContent(PDF, 'pdf', undefined)).contentType).toBe('application/pdf');
    expect((await checkContent(PDF, 'pdf', 'application/octet-stream')).contentType).toBe('application/pdf');
    const z = await yazlZip([{ name: 'a.txt', data: Buffer.from('hello') }]);
    expect(await checkContent(z, 'zip', 'application/x-zip-compressed')).toEqual({ contentType: 'application/zip', archive: 'zip', active: false, text: false });
  });

  it('refuses content that lies about its type, in the name or in the declared type', async () => {
    expect((await refused(checkContent(PNG, 'pdf', 'application/pdf'))).code).toBe('unsupported_media_type');
    expect((await refused(checkContent(PDF, 'png', 'image/png'))).detail).toContain('pdf');
    expect((await refused(checkContent(PNG, 'png', 'application/pdf'))).detail).toContain('declared');
    // A type with magic bytes that does not show them.
    expect((await refused(checkContent(Buffer.from('just text'), 'png', 'image/png'))).detail).toContain('.png');
    // Text under a text name must be text.
    expect((await refused(checkContent(Buffer.from([0x41, 0x00, 0x42]), 'csv', 'text/csv'))).detail).toContain('UTF-8');
    expect((await refused(checkContent(Buffer.from([0xc3, 0x28, 0x41]), 'txt', 'text/plain'))).detail).toContain('UTF-8');
    // Unknown binary, unknown extension, no extension: nothing can vouch for it.
    expect((await refused(checkContent(Buffer.from([1, 2, 3, 4]), 'dat', undefined))).code).toBe('unsupported_media_type');
    expect((await refused(checkContent(Buffer.from('plain'), '', undefined))).code).toBe('unsupported_media_type');
  });

  it('refuses programs whatever they are called', async () => {
    for (const [bytes, ext] of [[EXE, 'pdf'], [EXE, 'txt'], [ELF, 'csv'], [ELF, 'png']] as const) {
      expect((await refused(checkContent(bytes, ext, undefined))).detail, ext).toContain('program');
    }
  });

  it('accepts text types under their names, and marks those a browser could run as active', async () => {
    expect(await checkContent(Buffer.from('a,b\n1,2\n'), 'csv', 'application/vnd.ms-excel')).toEqual({ contentType: 'text/csv', archive: null, active: false, text: true });
    expect((await checkContent(Buffer.from('{"a":1}'), 'json', 'application/json')).contentType).toBe('application/json');
    expect(await checkContent(Buffer.from('<!doctype html><script>alert(1)</script>'), 'html', 'text/html')).toMatchObject({ contentType: 'text/html', active: true });
    const svg = Buffer.from('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
    expect(await checkContent(svg, 'svg', 'image/svg+xml')).toMatchObject({ contentType: 'image/svg+xml', active: true });
    expect(await checkContent(Buffer.from('<root/>'), 'xml', 'text/xml')).toMatchObject({ contentType: 'application/xml', active: true });
    // A head cut in the middle of a character is still text.
    const cut = Buffer.from('caf\u00e9 caf\u00e9', 'utf8');
    expect((await checkContent(cut.subarray(0, cut.length - 1), 'txt', undefined)).contentType).toBe('text/plain');
    expect((await refused(checkContent(Buffer.from('a,b'), 'csv', 'image/png'))).detail).toContain('declared');
  });
});
