export { createSocialSignIn, socialCallbackPath } from './sign-in.js';
export type { SocialSignIn, SocialSignInDeps, SocialOutcome } from './sign-in.js';
export { socialRoutes } from './routes.js';
export { createSocialIdentities } from './identities.js';
export type { SocialIdentities } from './identities.js';
