import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { InvariantError } from '../../kernel/errors.js';
import { isUuid } from '../../kernel/ids.js';

/**
 * Where sealed file bytes live (issue 16): local disk under the state directory by default, or an
 * S3-compatible bucket. What is stored is already sealed (sealed records, src/crypto), so a store
 * never sees plaintext, and its keys are `<org uuid>/<file uuid>`: never a name a user chose.
 *
 * A put is all or nothing: the bytes go to a temporary object first and appear under their key
 * only once complete (a rename on disk; S3's PUT is atomic by itself); a failed or aborted put
 * leaves nothing under the key, and the temporary object is removed.
 */
export interface FileStore {
  /** Stores the stream under `key`; resolves with the bytes written. */
  put(key: StoreKey, body: Readable): Promise<number>;
  /** `length` bytes from `offset` (the whole range must exist). */
  readAt(key: StoreKey, offset: number, length: number): Promise<Buffer>;
  /** The stored length, or null when nothing is stored under the key. */
  size(key: StoreKey): Promise<number | null>;
  /** Removes the object; nothing stored is not an error. */
  delete(key: StoreKey): Promise<void>;
}

/** An org's file, by ids only. */
export interface StoreKey {
  orgId: string;
  fileId: string;
}

export function storeKeyPath(key: StoreKey): string {
  if (!isUuid(key.orgId) || !isUuid(key.fileId)) throw new InvariantError('a file store key is two uuids');
  return `${key.orgId.toLowerCase()}/${key.fileId.toLowerCase()}`;
}

/**
 * Local disk: `<dir>/<org>/<file>`, written as `<file>.partial-<random>` then renamed, files 0600
 * and directories 0700, fsynced before the rename so that a crash cannot leave a complete-looking
 * object with missing bytes.
 */
export function diskFileStore(dir: string, tempName: () => string): FileStore {
  const pathOf = (key: StoreKey) => join(dir, storeKeyPath(key));
  return {
    async put(key, body) {
      const path = pathOf(key);
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const temp = `${path}.partial-${tempName()}`;
      let bytes = 0;
      body.on('data', (b: Buffer) => (bytes += b.length));
      try {
        await pipeline(body, createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
        const fh = await open(temp, 'r+');
        try {
          await fh.sync();
        } finally {
          await fh.close();
        }
        await rename(temp, path);
        return bytes;
      } catch (err) {
        await rm(temp, { force: true });
        throw err;
      }
    },
    async readAt(key, offset, length) {
      const fh = await open(pathOf(key), 'r');
      try {
        const buf = Buffer.alloc(length);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await fh.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) throw new Error('stored file is shorter than the range read');
          got += bytesRead;
        }
        return buf;
      } finally {
        await fh.close();
      }
    },
    async size(key) {
      try {
        return (await stat(pathOf(key))).size;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
        throw err;
      }
    },
    async delete(key) {
      await rm(pathOf(key), { force: true });
    },
  };
}

/** Temporary objects left by a crash mid-put (a maintenance job removes them). */
export async function partialFiles(dir: string): Promise<string[]> {
  const found: string[] = [];
  let orgs: string[];
  try {
    orgs = await readdir(dir);
  } catch {
    return found;
  }
  for (const org of orgs) {
    for (const name of await readdir(join(dir, org)).catch(() => [] as string[])) if (name.includes('.partial-')) found.push(join(dir, org, name));
  }
  return found;
}
