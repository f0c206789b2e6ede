/**
 * The authorization matrix, derived from the live route table. Nothing here lists routes or
 * their permissions: every case and every expected outcome comes from a route's declaration
 * (auth mode, permission, the path parameters in its url) and the built-in role catalogue.
 */
import type { AnyRoute } from '../../src/http/route.js';
import { orgScoped, projectScoped } from '../../src/http/route.js';
import {
  ALWAYS_RESTRICTED_ROLES,
  API_KEY_PERMISSIONS,
  BROWSER_SAFE_PERMISSIONS,
  BUILTIN_ROLE_PERMISSIONS,
  ORG_WIDE_PERMISSIONS,
  PROJECT_KEY_PERMISSIONS,
  type BuiltinRole,
  type Permission,
} from '../../src/kernel/permissions.js';
import type { DemoLogin } from '../../src/demo.js';

/** A demo identity of the caller's org, with what the role catalogue says it may do. */
export interface IdentitySpec {
  label: DemoLogin['role'] | 'restricted_admin';
  role: BuiltinRole;
  restricted: boolean;
  /** What the identity holds at request time (its role's permissions, less the org-wide ones when restricted). */
  permissions: ReadonlySet<Permission>;
}

/**
 * A member restricted to projects holds none of the org-wide permissions (ORG_WIDE_PERMISSIONS),
 * whatever their role grants: the catalogue's list, applied here, not the outcomes it implies.
 */
export function specOf(label: IdentitySpec['label'], role: BuiltinRole, restrictedFlag: boolean): IdentitySpec {
  const restricted = restrictedFlag || ALWAYS_RESTRICTED_ROLES.includes(role);
  const granted = BUILTIN_ROLE_PERMISSIONS[role];
  const held = restricted ? granted.filter((p) => !ORG_WIDE_PERMISSIONS.includes(p)) : granted;
  return { label, role, restricted, permissions: new Set(held) };
}

export function identitySpec(label: DemoLogin['role']): IdentitySpec {
  // src/demo.ts: `restricted_member` is a member restricted to assigned projects.
  return specOf(label, label === 'restricted_member' ? 'member' : label, label === 'restricted_member');
}

/**
 * session: a live cookie; revoked: a cookie whose session was revoked; none: no credential.
 * Keys are the identity's own (it is their creator), with every permission a key of that kind
 * may hold that the identity holds: secret_key, publishable_key (sent from a registered
 * origin), project_key (a secret key bound to the assigned project), revoked_key, expired_key;
 * other_org_key is the other org's owner's secret key.
 */
export const CREDENTIALS = [
  'session', 'revoked', 'none', 'secret_key', 'publishable_key', 'project_key', 'revoked_key', 'expired_key', 'other_org_key',
] as const;
export type Credential = (typeof CREDENTIALS)[number];
export type KeyCredential = Extract<Credential, `${string}_key`>;

export function isKeyCredential(c: Credential): c is KeyCredential {
  return c.endsWith('_key');
}

/** Every route meets a cookie, no credential and both kinds of key; key routes meet every credential. */
export function credentialsFor(route: AnyRoute): readonly Credential[] {
  return route.auth.mode === 'key' ? CREDENTIALS : ['session', 'revoked', 'none', 'secret_key', 'publishable_key'];
}

const LIVE_KEYS: ReadonlySet<Credential> = new Set(['secret_key', 'publishable_key', 'project_key']);

/**
 * own: the caller's org and objects in it. other: another org's id and its objects.
 * idor: the caller's org (or, for account routes, the caller's own account) addressing another
 * tenant's / user's object by id. none: the route has no org and no object parameter.
 */
export type OrgSide = 'own' | 'other' | 'idor' | 'none';

/**
 * assigned / unassigned: the restricted identities' scope; foreign: another org's project under the
 * caller's org; cross: the assigned project in the url, the object inside the unassigned one.
 */
export type ProjectSide = 'assigned' | 'unassigned' | 'foreign' | 'cross' | 'none';

/** Path parameters naming an object that lives inside the project of the url (not merely related to it). */
export const PROJECT_CONTAINED_PARAMS: ReadonlySet<string> = new Set(['assetId']);

/**
 * Which layer must refuse: authentication (401), the pipeline's authorization step (which records
 * an `authz.denied` audit event with this reason), or the domain finding no such object in the org.
 */
export type DenyLayer = 'authn' | 'not_member' | 'permission' | 'project' | 'object';

export type Expected =
  | { kind: 'allow'; why: string }
  | { kind: 'deny'; status: 401 | 403 | 404; layer: DenyLayer; why: string };

export interface MatrixCase {
  route: AnyRoute;
  identity: IdentitySpec;
  credential: Credential;
  org: OrgSide;
  project: ProjectSide;
  expected: Expected;
}

const SCOPE_PARAMS = new Set(['orgId', 'projectId']);
/**
 * Path parameters naming something of the deployment, the same for every caller (a social
 * sign-in provider): no object of an org or account, so no IDOR side.
 */
export const DEPLOYMENT_PARAMS = new Set(['provider']);

export function routeKey(route: Pick<AnyRoute, 'method' | 'url'>): string {
  return `${route.method} ${route.url}`;
}

export function pathParams(url: string): string[] {
  return [...url.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1] as string);
}

/** Path parameters naming an object inside the org (or account): anything but orgId and projectId. */
export function objectParams(url: string): string[] {
  return pathParams(url).filter((p) => !SCOPE_PARAMS.has(p) && !DEPLOYMENT_PARAMS.has(p));
}

/** The expected outcome, in the order the pipeline is specified to decide (docs/architecture.md, "One protected request"). */
export function expectedOutcome(route: AnyRoute, id: IdentitySpec, credential: Credential, org: OrgSide, project: ProjectSide): Expected {
  if (route.auth.mode === 'public') return { kind: 'allow', why: 'public route' };
  if (route.auth.mode === 'key') return expectedForKey(route, id, credential, org, project);
  if (credential !== 'session') return { kind: 'deny', status: 401, layer: 'authn', why: `no valid credential (${credential})` };
  if (!orgScoped(route)) {
    if (org === 'idor') return { kind: 'deny', status: 404, layer: 'object', why: 'another user\u2019s object' };
    return { kind: 'allow', why: `permission "${route.permission}" on own account` };
  }
  if (org === 'other') return { kind: 'deny', status: 404, layer: 'not_member', why: 'not a member of the org' };
  const permission = route.permission as Permission;
  if (!id.permissions.has(permission)) return { kind: 'deny', status: 403, layer: 'permission', why: `${id.label} lacks ${permission}` };
  const urlProjectInScope = project === 'assigned' || project === 'cross';
  if (projectScoped(route) && id.restricted && !urlProjectInScope) {
    return { kind: 'deny', status: 404, layer: 'project', why: `restricted to assigned projects (${project} project)` };
  }
  if (project === 'foreign') return { kind: 'deny', status: 404, layer: 'object', why: 'project of another org' };
  if (project === 'cross') return { kind: 'deny', status: 404, layer: 'object', why: 'object of another project of the org' };
  if (org === 'idor') return { kind: 'deny', status: 404, layer: 'object', why: 'object of another org' };
  return { kind: 'allow', why: `${id.label} holds ${permission}` };
}

/**
 * A key route: only a live key counts; a key is nobody in another org (401, not 404: it is
 * looked up within the org of the url); it may do what its kind allows of what its creator holds.
 */
function expectedForKey(route: AnyRoute, id: IdentitySpec, credential: Credential, org: OrgSide, project: ProjectSide): Expected {
  if (!LIVE_KEYS.has(credential)) return { kind: 'deny', status: 401, layer: 'authn', why: `not a live key of the org (${credential})` };
  if (org === 'other') return { kind: 'deny', status: 401, layer: 'authn', why: 'a key of another org' };
  const ceiling = credential === 'publishable_key' ? BROWSER_SAFE_PERMISSIONS : credential === 'project_key' ? PROJECT_KEY_PERMISSIONS : API_KEY_PERMISSIONS;
  const permission = route.permission as Permission;
  if (!ceiling.includes(permission) || !id.permissions.has(permission)) {
    return { kind: 'deny', status: 403, layer: 'permission', why: `a ${credential} of ${id.label} lacks ${permission}` };
  }
  const restricted = id.restricted || credential === 'project_key';
  const urlProjectInScope = project === 'assigned' || project === 'cross';
  if (projectScoped(route) && restricted && !urlProjectInScope) {
    return { kind: 'deny', status: 404, layer: 'project', why: `bound to the assigned project (${project} project)` };
  }
  if (project === 'foreign') return { kind: 'deny', status: 404, layer: 'object', why: 'project of another org' };
  if (project === 'cross') return { kind: 'deny', status: 404, layer: 'object', why: 'object of another project of the org' };
  if (org === 'idor') return { kind: 'deny', status: 404, layer: 'object', why: 'object of another org' };
  return { kind: 'allow', why: `a ${credential} of ${id.label} holds ${permission}` };
}

function orgSides(route: AnyRoute): OrgSide[] {
  const hasObjects = objectParams(route.url).length > 0;
  if (route.auth.mode === 'public') return ['none'];
  if (!orgScoped(route)) return hasObjects ? ['own', 'idor'] : ['none'];
  return hasObjects ? ['own', 'other', 'idor'] : ['own', 'other'];
}

function projectSides(route: AnyRoute, org: OrgSide): ProjectSide[] {
  if (!projectScoped(route)) return ['none'];
  if (org === 'own') {
    const contained = objectParams(route.url).some((p) => PROJECT_CONTAINED_PARAMS.has(p));
    return contained ? ['assigned', 'unassigned', 'foreign', 'cross'] : ['assigned', 'unassigned', 'foreign'];
  }
  if (org === 'other') return ['assigned', 'unassigned'];
  // idor isolates the object parameter: the project is in scope for everybody.
  return ['assigned'];
}

export function buildCases(routes: readonly AnyRoute[], identities: readonly IdentitySpec[]): MatrixCase[] {
  const cases: MatrixCase[] = [];
  for (const route of routes) {
    for (const identity of identities) {
      for (const credential of credentialsFor(route)) {
        for (const org of orgSides(route)) {
          // The other org's key on the other org's url is simply a live key there: not a case.
          if (credential === 'other_org_key' && org === 'other') continue;
          for (const project of projectSides(route, org)) {
            cases.push({ route, identity, credential, org, project, expected: expectedOutcome(route, identity, credential, org, project) });
          }
        }
      }
    }
  }
  return cases;
}

/**
 * The fewest cases the table may produce: every route × identity × credential, × {own, other}
 * org for org-scoped routes, × {assigned, unassigned} project for project-scoped ones.
 */
export function minimumCases(routes: readonly AnyRoute[], identities: number): number {
  let n = 0;
  for (const r of routes) n += identities * credentialsFor(r).length * (orgScoped(r) ? 2 : 1) * (projectScoped(r) ? 2 : 1);
  return n;
}
