import type { ReactNode } from 'react';
import type { RouteKey } from '../api/routes.gen';
import { Profile } from './account/Profile';

/**
 * Every page of the console, with the route it reads: a page is listed, and reachable, only for
 * a viewer who may call that route (api/access.ts). Adding a page is adding a line here.
 */
export interface PageEntry {
  path: string;
  title: string;
  needs: RouteKey;
  element: ReactNode;
}

export const ACCOUNT_PAGES: PageEntry[] = [
  { path: 'profile', title: 'Profile and password', needs: 'GET /api/me', element: <Profile /> },
];

export const ORG_PAGES: PageEntry[] = [];
