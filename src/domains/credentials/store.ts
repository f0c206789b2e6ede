import { sql } from 'kysely';
import type { FieldRef } from '../../crypto/index.js';
import type { CredentialKind } from './rules.js';
import type { CredentialView } from './responses.js';

/** The row as the SQL of this domain reads it: metadata only; the sealed value is read where it is opened. */
export interface CredentialRow {
  id: string;
  name: string;
  kind: CredentialKind;
  description: string;
  version: number;
  created_by: string;
  created_at: Date;
  updated_at: Date;
  last_used_at: Date | null;
  last_used_by: string | null;
  use_count: number | string;
}

/** The metadata columns, so that no query of the domain selects secret_sealed by accident. */
export const METADATA = sql.raw(
  'id, name, kind, description, version, created_by, created_at, updated_at, last_used_at, last_used_by, use_count',
);

/** Where a credential's value is sealed: the AAD binds it to its org, table, column and row. */
export const valueRef = (orgId: string, credentialId: string): FieldRef => ({
  scope: orgId, table: 'integration_credentials', column: 'secret_sealed', row: credentialId,
});

export const viewOf = (r: CredentialRow): CredentialView => ({
  id: r.id,
  name: r.name,
  kind: r.kind,
  description: r.description,
  version: r.version,
  createdBy: r.created_by,
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
  lastUsedAt: r.last_used_at?.toISOString() ?? null,
  lastUsedBy: r.last_used_by,
  useCount: Number(r.use_count),
});
