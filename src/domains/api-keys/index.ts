export { createApiKeyService, MAX_ACTIVE_KEYS, MAX_KEY_DAYS } from './service.js';
export type { ApiKeyService, ApiKeyView, NewKey } from './service.js';
export { createKeyUsage } from './usage.js';
export type { KeyUsage } from './usage.js';
export { apiKeyRoutes } from './routes.js';
