export { randomToken, randomCode, newId, sha256Hex, hmacSha256, safeEqual, randomKey } from './primitives.js';
export { Keyring, parseKeks } from './keyring.js';
export type { Kek, WrappedKey, DataKeyStore, FieldRef } from './keyring.js';
