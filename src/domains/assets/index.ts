export { createAssetService } from './service.js';
export type { AssetService } from './service.js';
export type { AssetView } from './responses.js';
export { assetRoutes } from './routes.js';
