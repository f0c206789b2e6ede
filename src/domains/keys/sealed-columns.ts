/**
 * Every sealed column of the schema, in one list: the data-key rotation job re-encrypts the
 * org-scoped ones, and a test compares the list with the live catalog (every `*_sealed` column
 * must be here), so a new sealed column cannot be forgotten by the rotation and left under a
 * key that is later destroyed. A migration that adds a sealed column adds its line here.
 *
 * `row` is the column whose value is the AAD's row (the FieldRef `row`), and the key the job
 * walks in order; `scope` is 'org' for values sealed with the row's org data key (`org_id` is
 * the FieldRef scope), or the named system scope (system_keys) the value is sealed in.
 */
export interface SealedColumn {
  table: string;
  column: string;
  row: string;
  scope: 'org' | { system: string };
}

export const SEALED_COLUMNS: readonly SealedColumn[] = [
  { table: 'webhook_endpoints', column: 'secret_sealed', row: 'id', scope: 'org' },
  { table: 'webhook_endpoints', column: 'previous_secret_sealed', row: 'id', scope: 'org' },
  { table: 'inbound_sources', column: 'secret_sealed', row: 'id', scope: 'org' },
  { table: 'sso_connections', column: 'secret_sealed', row: 'id', scope: 'org' },
  { table: 'sso_tests', column: 'result_sealed', row: 'id', scope: 'org' },
  // A deleted credential keeps its row with '' here: the job skips empty values.
  { table: 'integration_credentials', column: 'secret_sealed', row: 'id', scope: 'org' },
  { table: 'audit_streams', column: 'secret_sealed', row: 'id', scope: 'org' },
  { table: 'audit_streams', column: 'previous_secret_sealed', row: 'id', scope: 'org' },
  { table: 'audit_streams', column: 'auth_header_sealed', row: 'id', scope: 'org' },
  // An invitation's address (migration 037); rows made before it keep '' here and the address in clear.
  { table: 'invitations', column: 'email_sealed', row: 'id', scope: 'org' },
  // The personal part of audit events (details, address, user agent); the org chain of the system
  // org's events is sealed under its own scope, like an org's.
  { table: 'audit_events', column: 'personal_sealed', row: 'id', scope: 'org' },
  // What an IdP asserted as a linked SSO identity's address (migration 039).
  { table: 'sso_identities', column: 'email_sealed', row: 'id', scope: 'org' },
  // Each tenant export's archive key: rotated like any sealed value, so an archive kept past a
  // rotation still opens; destroyed with the org's keys, so a shredded org's archives do not.
  { table: 'org_exports', column: 'key_sealed', row: 'id', scope: 'org' },
  // Each uploaded file's own key (migration 041): rotated like the archives' keys; shredding the
  // org makes its files unreadable wherever their sealed bytes are kept.
  { table: 'files', column: 'key_sealed', row: 'id', scope: 'org' },
  // System scopes: not the org rotation's business (system_keys has no rotation job yet).
  { table: 'totp_credentials', column: 'secret_sealed', row: 'user_id', scope: { system: 'mfa' } },
  { table: 'mail_outbox', column: 'body_sealed', row: 'id', scope: { system: 'mail-outbox' } },
  { table: 'mail_outbox', column: 'to_sealed', row: 'id', scope: { system: 'mail-outbox' } },
  // An account's address and name (migration 039), found by the blind indexes beside them.
  { table: 'users', column: 'email_sealed', row: 'id', scope: { system: 'users' } },
  { table: 'users', column: 'name_sealed', row: 'id', scope: { system: 'users' } },
  { table: 'social_identities', column: 'email_sealed', row: 'id', scope: { system: 'users' } },
  // The deployment's export manifest signing key (its private half).
  { table: 'export_signing_keys', column: 'private_sealed', row: 'id', scope: { system: 'export-signing' } },
  // The address and user agent a session was opened from (migration 036).
  { table: 'sessions', column: 'client_sealed', row: 'id', scope: { system: 'sessions' } },
];

/** The columns a data-key rotation walks, in the order it walks them. */
export const ORG_SEALED_COLUMNS: readonly SealedColumn[] = SEALED_COLUMNS.filter((c) => c.scope === 'org');

export const columnName = (c: SealedColumn): string => `${c.table}.${c.column}`;
