import { ACCOUNT_PAGES } from './account';
import { PEOPLE_PAGES } from './people';
import { INTEGRATIONS_PAGES } from './integrations';
import { GOVERNANCE_PAGES } from './governance';

export type { PageEntry } from './entry';
export { ACCOUNT_PAGES };

/** Every page of an org, in the order of the navigation. Adding a page is a line in its area. */
export const ORG_PAGES = [...PEOPLE_PAGES, ...INTEGRATIONS_PAGES, ...GOVERNANCE_PAGES];
