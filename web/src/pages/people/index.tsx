import type { PageEntry } from '../entry';

export const PEOPLE_PAGES: PageEntry[] = [];
