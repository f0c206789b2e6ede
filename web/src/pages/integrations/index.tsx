import type { PageEntry } from '../entry';
import { ApiKeysPage } from './keys';
import { WebhooksPage } from './webhooks';
import { CredentialsPage } from './credentials';

export const INTEGRATIONS_PAGES: PageEntry[] = [
  { path: 'api-keys', title: 'API keys', needs: 'GET /api/orgs/{orgId}/api-keys', element: <ApiKeysPage /> },
  { path: 'webhooks', title: 'Webhooks', needs: 'GET /api/orgs/{orgId}/webhooks', element: <WebhooksPage /> },
  { path: 'credentials', title: 'Credentials', needs: 'GET /api/orgs/{orgId}/integrations/credentials', element: <CredentialsPage /> },
];
