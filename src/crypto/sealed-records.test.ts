import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { fileSealer, openRange, plaintextLengthOf, RECORD_OVERHEAD, RECORD_PLAINTEXT, recordOpener, sealedLengthOf } from './sealed-records.js';

const key = randomBytes(32);

async function seal(plain: Buffer, id = 'file-1', chunk = 10_000, k = key): Promise<Buffer> {
  const parts: Buffer[] = [];
  const source = Readable.from((function* () {
    for (let at = 0; at < plain.length; at += chunk) yield plain.subarray(at, at + chunk);
  })());
  const sealer = fileSealer(k, id);
  sealer.on('data', (b: Buffer) => parts.push(b));
  await pipeline(source, sealer);
  return Buffer.concat(parts);
}

async function range(sealed: Buffer, start: number, end: number, id = 'file-1', k = key): Promise<Buffer> {
  const out: Buffer[] = [];
  const readAt = (offset: number, length: number) => Promise.resolve(sealed.subarray(offset, offset + length));
  for await (const b of openRange(readAt, k, id, sealed.length, start, end)) out.push(b);
  return Buffer.concat(out);
}

async function opened(sealed: Buffer, id = 'file-1'): Promise<Buffer> {
  const parts: Buffer[] = [];
  const opener = recordOpener('palisade-file/v1', key, id);
  opener.on('data', (b: Buffer) => parts.push(b));
  await pipeline(Readable.from([sealed]), opener);
  return Buffer.concat(parts);
}

describe('sealed file records', () => {
  const sizes = [0, 1, RECORD_PLAINTEXT - 1, RECORD_PLAINTEXT, RECORD_PLAINTEXT + 1, 3 * RECORD_PLAINTEXT, 3 * RECORD_PLAINTEXT + 12_345];

  it('seals to the length it predicts, and opens back whole and by any range', async () => {
    for (const n of sizes) {
      const plain = randomBytes(n);
      const sealed = await seal(plain);
      expect(sealed.length, `${n}`).toBe(sealedLengthOf(n));
      expect(plaintextLengthOf(sealed.length)).toBe(n);
      expect((await opened(sealed)).equals(plain)).toBe(true);
      expect((await range(sealed, 0, n)).equals(plain)).toBe(true);
      for (const [s, e] of [[0, 0], [n, n], [0, Math.min(n, 10)], [Math.floor(n / 3), Math.floor((2 * n) / 3)], [Math.max(0, n - 7), n]] as const) {
        expect((await range(sealed, s, e)).equals(plain.subarray(s, e)), `${n} [${s}, ${e})`).toBe(true);
      }
    }
  });

  it('reads only the records a range needs', async () => {
    const plain = randomBytes(5 * RECORD_PLAINTEXT);
    const sealed = await seal(plain);
    const reads: number[] = [];
    const readAt = (offset: number, length: number) => {
      reads.push(offset);
      return Promise.resolve(sealed.subarray(offset, offset + length));
    };
    const out: Buffer[] = [];
    for await (const b of openRange(readAt, key, 'file-1', sealed.length, 2 * RECORD_PLAINTEXT + 5, 3 * RECORD_PLAINTEXT + 5)) out.push(b);
    expect(Buffer.concat(out).equals(plain.subarray(2 * RECORD_PLAINTEXT + 5, 3 * RECORD_PLAINTEXT + 5))).toBe(true);
    expect(reads).toEqual([2 * (RECORD_PLAINTEXT + RECORD_OVERHEAD), 3 * (RECORD_PLAINTEXT + RECORD_OVERHEAD)]);
  });

  it('refuses a flipped bit, another file\u2019s records, another key, swapped or dropped records, a cut or a tail', async () => {
    const plain = randomBytes(3 * RECORD_PLAINTEXT + 100);
    const sealed = await seal(plain);
    const all = (s: Buffer, id = 'file-1', k = key) => range(s, 0, plaintextLengthOf(s.length) ?? 0, id, k);
    const flipped = Buffer.from(sealed);
    flipped[RECORD_PLAINTEXT + 2000] = (flipped[RECORD_PLAINTEXT + 2000] ?? 0) ^ 1;
    await expect(all(flipped)).rejects.toThrow();
    await expect(opened(flipped)).rejects.toThrow();
    // The same bytes presented as another file (the id is bound in every record).
    await expect(all(sealed, 'file-2')).rejects.toThrow();
    await expect(all(sealed, 'file-1', randomBytes(32))).rejects.toThrow();
    // Records 0 and 1 swapped.
    const full = RECORD_PLAINTEXT + RECORD_OVERHEAD;
    const swapped = Buffer.concat([sealed.subarray(full, 2 * full), sealed.subarray(0, full), sealed.subarray(2 * full)]);
    await expect(all(swapped)).rejects.toThrow();
    // Cut at a record boundary: the new last record was not sealed as final.
    const cut = sealed.subarray(0, 2 * full);
    expect(plaintextLengthOf(cut.length)).toBe(2 * RECORD_PLAINTEXT);
    await expect(all(cut)).rejects.toThrow();
    await expect(opened(cut)).rejects.toThrow('truncated');
    // A record of another file sealed under the same key spliced in. (Each file has a key of its
    // own, so two sealings never share both key and id.)
    const other = await seal(randomBytes(plain.length), 'file-2');
    const spliced = Buffer.concat([sealed.subarray(0, full), other.subarray(full, 2 * full), sealed.subarray(2 * full)]);
    await expect(all(spliced)).rejects.toThrow();
    // Bytes after the final record, or a length no file seals to.
    await expect(opened(Buffer.concat([sealed, sealed.subarray(0, 40)]))).rejects.toThrow();
    expect(plaintextLengthOf(10)).toBeNull();
    // One byte short: the final record fails its tag when it is read (a range before it reads
    // only its own records, which are intact).
    await expect(all(sealed.subarray(0, sealed.length - 1))).rejects.toThrow();
    await expect(range(sealed, 0, plain.length + 1)).rejects.toThrow(RangeError);
  });
});
