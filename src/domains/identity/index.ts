export { createIdentityService } from './service.js';
export type { IdentityService, IdentityDeps, UserView } from './service.js';
export { identityRoutes } from './routes.js';
export { passwordProblem, hashPassword, verifyPassword, PASSWORD_MIN, PASSWORD_MAX } from './passwords.js';
