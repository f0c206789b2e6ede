import type { PageEntry } from '../entry';

export const INTEGRATIONS_PAGES: PageEntry[] = [];
