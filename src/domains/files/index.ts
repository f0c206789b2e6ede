export { createFileService, fileKeyRef } from './service.js';
export type { FileService } from './service.js';
export type { FileView } from './responses.js';
export { fileRoutes } from './routes.js';
export { clamdScanner, ScannerUnavailable, type Scanner, type ScannerFailure } from './clamd.js';
export { diskFileStore, type FileStore } from './storage.js';
export { s3FileStore } from './s3-store.js';
export { openFileStore } from './open-store.js';
export { setOrgPlan } from './plans.js';
