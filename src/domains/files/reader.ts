import { openRange, RECORD_PLAINTEXT } from '../../crypto/index.js';
import type { FileStore, StoreKey } from './storage.js';

/**
 * A random-access reader of a stored file's plaintext for the archive check, keeping the last
 * records it opened: yauzl reads a central directory entry by entry, and each read would
 * otherwise fetch and decrypt a whole 64 KiB record again (attacker review, finding 5).
 */
export function plainReader(store: FileStore, key: StoreKey, fileKey: Buffer, fileId: string, sealedBytes: number, size: number): (offset: number, length: number) => Promise<Buffer> {
  const cache = new Map<number, Buffer>();
  const record = async (i: number): Promise<Buffer> => {
    const hit = cache.get(i);
    if (hit) return hit;
    const parts: Buffer[] = [];
    const end = Math.min(size, (i + 1) * RECORD_PLAINTEXT);
    for await (const b of openRange((o, l) => store.readAt(key, o, l), fileKey, fileId, sealedBytes, i * RECORD_PLAINTEXT, end)) parts.push(b);
    const plain = Buffer.concat(parts);
    cache.set(i, plain);
    if (cache.size > 8) cache.delete(cache.keys().next().value as number);
    return plain;
  };
  return async (offset: number, length: number): Promise<Buffer> => {
    if (length <= 0) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for (let i = Math.floor(offset / RECORD_PLAINTEXT); i <= Math.floor((offset + length - 1) / RECORD_PLAINTEXT); i++) {
      const plain = await record(i);
      const from = Math.max(0, offset - i * RECORD_PLAINTEXT);
      const to = Math.min(plain.length, offset + length - i * RECORD_PLAINTEXT);
      parts.push(plain.subarray(from, to));
    }
    return Buffer.concat(parts);
  };
}
