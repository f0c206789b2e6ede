export { createSealer, ACTIVE_KEY_TTL_MS, type Sealer } from './sealer.js';
export { SEALED_COLUMNS, ORG_SEALED_COLUMNS, columnName, type SealedColumn } from './sealed-columns.js';
export { createDataKeyService, SWEEP_AFTER_MS, SWEEP_MARGIN_MS, type DataKeyService, type DataKeyState, type DataKeySettings } from './data-key-rotation.js';
export { createDataKeyJob, type DataKeyJob } from './rotation-job.js';
export { createShredder, type Shredder, type Shredded } from './shredding.js';
export { dataKeyRoutes } from './routes.js';
export { kekUsage, renderStatus, rotateKek, RotationRefused } from './kek-rotation.js';
export type { KekUsage, RotationProgress, RotationResult } from './kek-rotation.js';
