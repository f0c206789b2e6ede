/**
 * The local-disk file store (src/domains/files/storage.ts): all-or-nothing puts, keys made of ids
 * only, private permissions, and the sealed records read back by range through it.
 */
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { fileSealer, newId, openRange, randomKey, randomToken } from '../../src/crypto/index.js';
import { diskFileStore, partialFiles } from '../../src/domains/files/storage.js';
import { InvariantError } from '../../src/kernel/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'palisade-files-'));
const store = diskFileStore(dir, () => randomToken(8));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('disk file store', () => {
  it('stores under <org>/<file> with private permissions, and reads back any range', async () => {
    const key = { orgId: newId(), fileId: newId() };
    const body = Buffer.from('0123456789'.repeat(1000));
    expect(await store.put(key, Readable.from([body.subarray(0, 4000), body.subarray(4000)]))).toBe(body.length);
    expect(await store.size(key)).toBe(body.length);
    expect((await store.readAt(key, 3, 7)).toString()).toBe('3456789');
    const path = join(dir, key.orgId, key.fileId);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, key.orgId)).mode & 0o777).toBe(0o700);
    await expect(store.readAt(key, body.length - 2, 5)).rejects.toThrow('shorter');
    await store.delete(key);
    expect(await store.size(key)).toBeNull();
    await store.delete(key);
  });

  it('leaves nothing under the key, and no temporary file, when the upload breaks off', async () => {
    const key = { orgId: newId(), fileId: newId() };
    const body = new PassThrough();
    const put = store.put(key, body);
    body.write(Buffer.alloc(100_000, 1));
    setTimeout(() => body.destroy(new Error('client went away')), 20);
    await expect(put).rejects.toThrow('client went away');
    expect(await store.size(key)).toBeNull();
    expect(readdirSync(join(dir, key.orgId))).toEqual([]);
    expect(await partialFiles(dir)).toEqual([]);
  });

  it('takes ids only as keys', async () => {
    for (const key of [{ orgId: '../etc', fileId: newId() }, { orgId: newId(), fileId: 'passwd' }, { orgId: newId(), fileId: `${newId()}/x` }]) {
      await expect(store.size(key)).rejects.toBeInstanceOf(InvariantError);
      await expect(store.put(key, Readable.from([Buffer.from('x')]))).rejects.toBeInstanceOf(InvariantError);
    }
  });

  it('holds sealed records, opened by range from disk', async () => {
    const key = { orgId: newId(), fileId: newId() };
    const fileKey = randomKey();
    const plain = Buffer.alloc(200_000);
    for (let i = 0; i < plain.length; i++) plain[i] = i % 251;
    const sealed = Readable.from([plain]).pipe(fileSealer(fileKey, key.fileId));
    const stored = await store.put(key, sealed);
    expect(stored).toBeGreaterThan(plain.length);
    const out: Buffer[] = [];
    for await (const b of openRange((o, l) => store.readAt(key, o, l), fileKey, key.fileId, stored, 70_000, 140_000)) out.push(b);
    expect(Buffer.concat(out).equals(plain.subarray(70_000, 140_000))).toBe(true);
  });
});
