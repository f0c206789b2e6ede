import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import type { Readable } from 'node:stream';
import { storeKeyPath, type FileStore } from './storage.js';

/**
 * An S3-compatible bucket as a FileStore (AWS, or anything that speaks its API). Objects are
 * `<prefix><org uuid>/<file uuid>`, already sealed. A put streams: the bytes are cut into parts
 * of `partBytes` (S3's minimum is 5 MiB) and sent as a multipart upload, completed only once the
 * stream has ended, and aborted when it fails, so a broken-off upload leaves no object (S3 shows
 * an object only when its upload completes). A body smaller than one part goes as one PUT.
 */
export interface S3StoreOptions {
  bucket: string;
  prefix?: string;
  /** S3 client settings: region, endpoint (for a compatible server), credentials, path-style. */
  client: ConstructorParameters<typeof S3Client>[0];
  partBytes?: number;
}

export function s3FileStore(opts: S3StoreOptions): FileStore & { close(): void } {
  const s3 = new S3Client(opts.client ?? {});
  const partBytes = Math.max(5 * 1024 * 1024, opts.partBytes ?? 8 * 1024 * 1024);
  const keyOf = (k: Parameters<FileStore['size']>[0]) => `${opts.prefix ?? ''}${storeKeyPath(k)}`;
  const Bucket = opts.bucket;

  return {
    async put(key, body: Readable) {
      const Key = keyOf(key);
      let pending: Buffer[] = [];
      let pendingBytes = 0;
      let total = 0;
      let uploadId: string | null = null;
      const parts: { ETag: string | undefined; PartNumber: number }[] = [];
      const sendPart = async (data: Buffer) => {
        uploadId ??= (await s3.send(new CreateMultipartUploadCommand({ Bucket, Key }))).UploadId ?? null;
        if (!uploadId) throw new Error('the object store did not start a multipart upload');
        const PartNumber = parts.length + 1;
        const { ETag } = await s3.send(new UploadPartCommand({ Bucket, Key, UploadId: uploadId, PartNumber, Body: data, ContentLength: data.length }));
        parts.push({ ETag, PartNumber });
      };
      try {
        for await (const chunk of body) {
          const b = chunk as Buffer;
          pending.push(b);
          pendingBytes += b.length;
          total += b.length;
          if (pendingBytes >= partBytes) {
            const all = Buffer.concat(pending);
            await sendPart(all.subarray(0, partBytes));
            const rest = all.subarray(partBytes);
            pending = rest.length ? [rest] : [];
            pendingBytes = rest.length;
          }
        }
        const last = Buffer.concat(pending);
        if (uploadId === null) {
          await s3.send(new PutObjectCommand({ Bucket, Key, Body: last, ContentLength: last.length }));
          return total;
        }
        if (last.length > 0) await sendPart(last);
        await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: uploadId, MultipartUpload: { Parts: parts } }));
        return total;
      } catch (err) {
        if (uploadId !== null) await s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: uploadId })).catch(() => undefined);
        throw err;
      }
    },
    async readAt(key, offset, length) {
      if (length === 0) return Buffer.alloc(0);
      const res = await s3.send(new GetObjectCommand({ Bucket, Key: keyOf(key), Range: `bytes=${offset}-${offset + length - 1}` }));
      const bytes = Buffer.from((await res.Body?.transformToByteArray()) ?? []);
      if (bytes.length !== length) throw new Error('stored file is shorter than the range read');
      return bytes;
    },
    async size(key) {
      try {
        const head = await s3.send(new HeadObjectCommand({ Bucket, Key: keyOf(key) }));
        return head.ContentLength ?? null;
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        if (status === 404) return null;
        throw err;
      }
    },
    async delete(key) {
      await s3.send(new DeleteObjectCommand({ Bucket, Key: keyOf(key) }));
    },
    close() {
      s3.destroy();
    },
  };
}
