export { createAssetService } from './service.js';
export type { AssetService, AssetView } from './service.js';
export { assetRoutes } from './routes.js';
