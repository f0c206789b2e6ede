export { createIdentityService } from './service.js';
export type { IdentityService, IdentityDeps, UserView } from './service.js';
export { identityRoutes } from './routes.js';
export { passwordProblem, hashPassword, verifyPassword, PASSWORD_MIN, PASSWORD_MAX } from './passwords.js';
export { createLockout } from './lockout.js';
export type { Lockout, LockoutPolicy } from './lockout.js';
export { createMfaService, RECOVERY_CODE_COUNT, CHALLENGE_TTL_MS } from './mfa.js';
export type { MfaService, FactorProof, FactorMethod } from './mfa.js';
export { totpCodeAt } from './totp.js';
