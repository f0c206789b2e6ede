/**
 * The S3 file store (src/domains/files/s3-store.ts) against an S3-compatible server on loopback
 * (s3rver): one PUT for a small file, a multipart upload for a large one, ranged reads, nothing
 * under the key when the upload breaks off, ids-only keys, and sealed records read back by range.
 */
import { PassThrough, Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileSealer, newId, openRange, randomKey } from '../../src/crypto/index.js';
import { s3FileStore } from '../../src/domains/files/s3-store.js';
import type { FileStore } from '../../src/domains/files/storage.js';
import { InvariantError } from '../../src/kernel/errors.js';
import { startS3, type LocalS3 } from '../support/s3.js';

describe('S3 file store (s3rver on loopback)', () => {
  let s3: LocalS3;
  let store: FileStore & { close(): void };

  beforeAll(async () => {
    s3 = await startS3();
    store = s3FileStore({ bucket: s3.bucket, prefix: 'files/', client: s3.client, partBytes: 5 * 1024 * 1024 });
  });
  afterAll(async () => {
    store?.close();
    await s3?.stop();
  });

  it('stores a small file in one PUT and a large one in parts, and reads back any range', async () => {
    const small = { orgId: newId(), fileId: newId() };
    expect(await store.put(small, Readable.from([Buffer.from('hello '), Buffer.from('world')]))).toBe(11);
    expect(await store.size(small)).toBe(11);
    expect((await store.readAt(small, 6, 5)).toString()).toBe('world');
    const large = { orgId: newId(), fileId: newId() };
    const body = Buffer.alloc(12 * 1024 * 1024 + 123);
    for (let i = 0; i < body.length; i += 4096) body[i] = (i / 4096) % 256;
    expect(await store.put(large, Readable.from((function* () {
      for (let at = 0; at < body.length; at += 1024 * 1024) yield body.subarray(at, at + 1024 * 1024);
    })()))).toBe(body.length);
    expect(await store.size(large)).toBe(body.length);
    const at = 5 * 1024 * 1024 - 10;
    expect((await store.readAt(large, at, 20)).equals(body.subarray(at, at + 20))).toBe(true);
    await expect(store.readAt(small, 8, 10)).rejects.toThrow();
    await store.delete(small);
    expect(await store.size(small)).toBeNull();
  });

  it('leaves nothing under the key when the upload breaks off, before or after its first part', async () => {
    for (const sent of [1024, 6 * 1024 * 1024]) {
      const key = { orgId: newId(), fileId: newId() };
      const body = new PassThrough();
      const put = store.put(key, body);
      body.write(Buffer.alloc(sent, 7));
      setTimeout(() => body.destroy(new Error('client went away')), 200);
      await expect(put).rejects.toThrow('client went away');
      expect(await store.size(key)).toBeNull();
    }
  });

  it('takes ids only as keys', async () => {
    await expect(store.size({ orgId: '..', fileId: newId() })).rejects.toBeInstanceOf(InvariantError);
  });

  it('holds sealed records, opened by range through ranged GETs', async () => {
    const key = { orgId: newId(), fileId: newId() };
    const fileKey = randomKey();
    const plain = Buffer.alloc(300_000, 0x5a);
    const stored = await store.put(key, Readable.from([plain]).pipe(fileSealer(fileKey, key.fileId)));
    const out: Buffer[] = [];
    for await (const b of openRange((o, l) => store.readAt(key, o, l), fileKey, key.fileId, stored, 100_000, 200_000)) out.push(b);
    expect(Buffer.concat(out).equals(plain.subarray(100_000, 200_000))).toBe(true);
  });
});
