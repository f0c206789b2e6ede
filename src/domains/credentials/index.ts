export { createCredentialService } from './service.js';
export type { CredentialService, CredentialDeps, NewCredential } from './service.js';
export { createVault } from './vault.js';
export type { Vault, VaultDeps, UseReport } from './vault.js';
export { credentialRoutes } from './routes.js';
export type { CredentialView, RotationView, UseView } from './responses.js';
export { CREDENTIAL_KINDS, USE_STATUSES, MAX_SECRET_BYTES, MAX_CREDENTIALS_PER_ORG, NAME_PATTERN } from './rules.js';
export type { CredentialKind, UseStatus } from './rules.js';
