export { createApiKeyService, MAX_ACTIVE_KEYS, MAX_KEY_DAYS } from './service.js';
export type { ApiKeyService, NewKey } from './service.js';
export type { ApiKeyView, KeyIdentity } from './responses.js';
export { createKeyUsage } from './usage.js';
export type { KeyUsage } from './usage.js';
export { apiKeyRoutes } from './routes.js';
