import { ROUTES, type RouteKey } from './routes.gen';
import type { MyOrg } from '../auth/session';

/**
 * Whether the viewer may call a route in an org: the route's permission from the route table
 * (routes.gen.ts) against the viewer's effective permissions the server reported (GET /api/me).
 * Only decides what the console shows; the server checks every request on its own.
 */
export function can(org: MyOrg | null | undefined, route: RouteKey): boolean {
  const need: string = ROUTES[route].permission;
  if (need === 'none' || need === 'self') return true;
  return org ? org.permissions.includes(need as MyOrg['permissions'][number]) : false;
}

export function routeExists(route: string): route is RouteKey {
  return Object.prototype.hasOwnProperty.call(ROUTES, route);
}
