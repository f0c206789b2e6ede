export { createSessionService } from './service.js';
export type { SessionService, Verified, SessionView, SessionProof } from './service.js';
export { sessionRoutes } from './routes.js';
export { setSessionCookie, clearSessionCookie } from './cookie.js';
export type { CookieSettings } from './cookie.js';
export { mfaRoutes } from './mfa-routes.js';
export { passkeySessionRoutes } from './passkey-routes.js';
