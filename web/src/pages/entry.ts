import type { ReactNode } from 'react';
import type { RouteKey } from '../api/routes.gen';

/**
 * A page of the console, with the route it reads: listed, and reachable, only for a viewer who
 * may call that route (api/access.ts).
 */
export interface PageEntry {
  path: string;
  title: string;
  needs: RouteKey;
  element: ReactNode;
}
