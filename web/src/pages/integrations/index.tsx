import type { PageEntry } from '../entry';
import { ApiKeysPage } from './keys';

export const INTEGRATIONS_PAGES: PageEntry[] = [
  { path: 'api-keys', title: 'API keys', needs: 'GET /api/orgs/{orgId}/api-keys', element: <ApiKeysPage /> },
];
