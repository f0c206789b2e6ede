import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './redis.js';

/**
 * An S3-compatible server on loopback for the S3 file store's tests: s3rver (S3's REST API over a
 * directory), one bucket, its own port and directory. s3rver ships no types: the two calls used
 * are declared here.
 */
interface S3rverInstance {
  run(): Promise<unknown>;
  close(): Promise<void>;
}
type S3rverClass = new (opts: { port: number; address: string; directory: string; silent: boolean; configureBuckets: { name: string }[] }) => S3rverInstance;
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

export interface LocalS3 {
  bucket: string;
  client: { region: string; endpoint: string; forcePathStyle: boolean; credentials: { accessKeyId: string; secretAccessKey: string }; requestChecksumCalculation: 'WHEN_REQUIRED'; responseChecksumValidation: 'WHEN_REQUIRED' };
  stop(): Promise<void>;
}

export async function startS3(bucket = 'palisade-files'): Promise<LocalS3> {
  const directory = mkdtempSync(join(tmpdir(), 'palisade-s3-'));
  const port = await freePort();
  const server = new S3rver({ port, address: '127.0.0.1', directory, silent: true, configureBuckets: [{ name: bucket }] });
  await server.run();
  return {
    bucket,
    client: {
      region: 'us-east-1',
      endpoint: `http://127.0.0.1:${port}`,
      forcePathStyle: true,
      // s3rver's fixed development credentials.
      credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      // s3rver predates the SDK's default flexible checksums.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    },
    async stop() {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
