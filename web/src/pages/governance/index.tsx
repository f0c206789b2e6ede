import type { PageEntry } from '../entry';

export const GOVERNANCE_PAGES: PageEntry[] = [];
