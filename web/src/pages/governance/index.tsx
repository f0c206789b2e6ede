import type { PageEntry } from '../entry';
import { AuditStreamsPage } from './AuditStreams';
import { AuditTrail } from './AuditTrail';
import { DataExportPage } from './DataExport';
import { SecuritySettings } from './SecuritySettings';
import { SsoPage } from './Sso';

export const GOVERNANCE_PAGES: PageEntry[] = [
  { path: 'audit', title: 'Audit trail', needs: 'GET /api/orgs/{orgId}/audit', element: <AuditTrail /> },
  { path: 'audit-streams', title: 'Audit streaming', needs: 'GET /api/orgs/{orgId}/audit/streams', element: <AuditStreamsPage /> },
  { path: 'settings', title: 'Security settings', needs: 'GET /api/orgs/{orgId}/settings', element: <SecuritySettings /> },
  { path: 'export', title: 'Data export', needs: 'GET /api/orgs/{orgId}/exports', element: <DataExportPage /> },
  { path: 'sso', title: 'Single sign-on', needs: 'GET /api/orgs/{orgId}/sso/connections', element: <SsoPage /> },
];
