export { randomToken, randomCode, newId, sha256Hex, hmacSha256, safeEqual, randomKey } from './primitives.js';
export { Keyring, parseKeks, SealedValueError } from './keyring.js';
export type { Kek, WrappedKey, DataKeyStore, FieldRef } from './keyring.js';
export { generateApiToken, parseApiToken, API_TOKEN_LENGTH } from './api-token.js';
export type { ApiTokenKind } from './api-token.js';
export { mintOpaqueToken, opaqueTokenHash, OPAQUE_TOKEN_PREFIXES } from './opaque-token.js';
export type { OpaqueTokenKind } from './opaque-token.js';
export { createSealedBox } from './sealed-box.js';
export type { SealedBox } from './sealed-box.js';
