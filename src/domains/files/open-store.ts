import type { FileStoreSettings } from '../../config/index.js';
import { randomToken } from '../../crypto/index.js';
import { s3FileStore } from './s3-store.js';
import { diskFileStore, type FileStore } from './storage.js';

/** The store PALISADE_FILE_STORE names: local disk under the state directory by default, or an S3-compatible bucket. */
export function openFileStore(settings: FileStoreSettings): FileStore & { close?(): void } {
  if (settings.kind === 'disk') return diskFileStore(settings.dir, () => randomToken(12));
  return s3FileStore({
    bucket: settings.bucket,
    prefix: settings.prefix,
    client: {
      region: settings.region,
      // A compatible server (an endpoint of its own) often predates the SDK's default checksums
      // on every request; the records are authenticated by their own GCM tags anyway.
      ...(settings.endpoint ? { endpoint: settings.endpoint, requestChecksumCalculation: 'WHEN_REQUIRED' as const, responseChecksumValidation: 'WHEN_REQUIRED' as const } : {}),
      forcePathStyle: settings.forcePathStyle,
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
    },
  });
}
