export { createSessionService } from './service.js';
export type { SessionService, Verified, SessionView } from './service.js';
export { sessionRoutes, setSessionCookie, clearSessionCookie } from './routes.js';
export type { CookieSettings } from './routes.js';
