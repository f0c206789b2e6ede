import type { PageEntry } from '../entry';
import { Members } from './Members';
import { Roles } from './Roles';
import { Projects } from './Projects';
import { Files } from './Files';

/** Members first: it is the landing page of an org. */
export const PEOPLE_PAGES: PageEntry[] = [
  { path: 'members', title: 'Members', needs: 'GET /api/orgs/{orgId}/members', element: <Members /> },
  { path: 'roles', title: 'Roles', needs: 'GET /api/orgs/{orgId}/roles', element: <Roles /> },
  { path: 'projects', title: 'Projects', needs: 'GET /api/orgs/{orgId}/projects', element: <Projects /> },
  { path: 'files', title: 'Files', needs: 'GET /api/orgs/{orgId}/projects/{projectId}/files', element: <Files /> },
];
