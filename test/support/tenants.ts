/**
 * Tenants written with direct SQL through the runtime role: one org with a row in every tenant
 * table, small orgs for the many-tenant tests, and the probes the isolation suites read with.
 */
import { sql } from 'kysely';
import { Keyring, newId, randomToken } from '../../src/crypto/index.js';
import { exec, rows, type Database, type TenantBinding, type Tx } from '../../src/db/database.js';
import type { OwnerConnection } from '../../src/db/migrate.js';
import { chainKeysFrom, createAuditWriter, type AuditWriter } from '../../src/domains/audit/index.js';
import { insertUserSql, ssoIdentityEmailRef } from '../../src/domains/identity/people.js';
import { createSealer } from '../../src/domains/keys/index.js';
import { insertOrg } from '../../src/domains/tenancy/index.js';
import { ManualClock } from '../../src/kernel/clock.js';
import { systemContext } from '../../src/kernel/context.js';
import { TEST_KEK } from './app.js';

/** Every table that carries org_id; the catalog-driven tests also check nothing is missing here. */
export const TENANT_TABLES = [
  'organizations', 'org_settings', 'org_keys', 'custom_roles', 'memberships', 'projects',
  'project_access', 'assets', 'invitations', 'audit_events', 'audit_heads', 'inbound_sources', 'inbound_events',
  'api_keys', 'webhook_endpoints', 'webhook_deliveries', 'webhook_attempts', 'org_domains', 'sso_connections',
  'sso_identities', 'sso_tests', 'integration_credentials', 'integration_credential_rotations', 'integration_credential_uses',
  'audit_streams', 'org_key_rotations', 'org_exports', 'org_export_parts', 'org_export_links',
  'files', 'org_file_usage', 'files_gone',
] as const;
export type TenantTable = (typeof TENANT_TABLES)[number];

export interface SeededTenant {
  orgId: string;
  slug: string;
  ownerId: string;
  memberId: string;
  customRoleId: string;
  invitationId: string;
  /** A webhook endpoint and one of its deliveries. */
  endpointId: string;
  deliveryId: string;
  inboundSourceId: string;
  /** An integration credential (value sealed by the real sealer) with its creation and one use logged. */
  credentialId: string;
  exportId: string;
  /** An OIDC connection, with the member's identity at it linked. */
  connectionId: string;
  projects: [string, string];
  /** Asset ids per project, two each. */
  assets: Record<string, string[]>;
  sealed: string;
}

export function auditWriter(db: Database): AuditWriter {
  return createAuditWriter({ db, keys: chainKeysFrom(new Keyring([TEST_KEK])), sealer: createSealer(new Keyring([TEST_KEK])), clock: new ManualClock(new Date('2026-01-01T00:00:00Z')), onError: (err) => { throw err; } });
}

/**
 * One org with a row in every tenant table: users, the org (settings, owner membership, audit
 * events), a custom role and a restricted member using it, two projects with two assets each,
 * project access, an invitation and an org data key (through the real sealer).
 */
export async function seedTenant(db: Database, audit: AuditWriter, slug: string): Promise<SeededTenant> {
  const orgId = newId();
  const ownerId = newId();
  const memberId = newId();
  const connectionId = newId();
  const customRoleId = newId();
  const invitationId = newId();
  const inboundSourceId = newId();
  const credentialId = newId();
  const exportId = newId();
  const endpointId = newId();
  const deliveryId = newId();
  const projects: [string, string] = [newId(), newId()];
  const assets: Record<string, string[]> = { [projects[0]]: [newId(), newId()], [projects[1]]: [newId(), newId()] };
  const ctx = systemContext('isolation-test');
  const sealer = createSealer(new Keyring([TEST_KEK]));
  const sealed = await db.withTenant({ orgId, projectIds: null }, async (tx) => {
    for (const [id, who] of [[ownerId, 'owner'], [memberId, 'member']] as const) {
      await (await insertUserSql(sealer, tx, id, { email: `${who}@${slug}.test`, name: `${slug} ${who}` })).execute(tx);
    }
    await insertOrg({ audit }, tx, ctx, { id: orgId, slug, name: `${slug} Inc` }, ownerId);
    await exec(tx, sql`insert into custom_roles (org_id, id, name, permissions)
                       values (${orgId}, ${customRoleId}, 'auditor', ${['audit:read']})`);
    await exec(tx, sql`insert into memberships (org_id, user_id, role, custom_role_id, restricted)
                       values (${orgId}, ${memberId}, 'custom', ${customRoleId}, true)`);
    for (const p of projects) {
      await exec(tx, sql`insert into projects (org_id, id, name) values (${orgId}, ${p}, ${`${slug}-${p.slice(0, 4)}`})`);
      for (const a of assets[p] ?? []) {
        await exec(tx, sql`insert into assets (org_id, project_id, id, name, kind) values (${orgId}, ${p}, ${a}, ${`host-${a.slice(0, 4)}`}, 'host')`);
      }
    }
    await exec(tx, sql`insert into project_access (org_id, project_id, user_id) values (${orgId}, ${projects[0]}, ${memberId})`);
    await exec(tx, sql`insert into invitations (org_id, id, email, role, token_hash, invited_by, expires_at)
                       values (${orgId}, ${invitationId}, ${`new@${slug}.test`}, 'viewer', ${randomToken()}, ${ownerId}, now() + interval '1 day')`);
    await audit.append(tx, orgId, ctx, { action: 'project.created', target: { type: 'project', id: projects[0] } });
    const inboundSecret = await sealer.seal(tx, { scope: orgId, table: 'inbound_sources', column: 'secret_sealed', row: inboundSourceId }, `whsec_${randomToken()}`);
    await exec(tx, sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
                       values (${orgId}, ${inboundSourceId}, 'stripe', 'billing', ${inboundSecret}, ${ownerId}, now())`);
    await exec(tx, sql`insert into inbound_events (org_id, source_id, event_id, type, received_at)
                       values (${orgId}, ${inboundSourceId}, ${`evt_${slug}`}, 'invoice.paid', now())`);
    await exec(tx, sql`insert into sso_connections (org_id, id, kind, name, settings, secret_sealed, created_by, created_at, updated_at)
                       values (${orgId}, ${connectionId}, 'oidc', 'IdP', ${JSON.stringify({ issuer: `https://idp.${slug}.example`, clientId: slug, scopes: ['openid'] })}::jsonb,
                               'sealed', ${ownerId}, now(), now())`);
    const ssoIdentityId = newId();
    const asserted = await sealer.seal(tx, ssoIdentityEmailRef(orgId, ssoIdentityId), `member@${slug}.test`);
    await exec(tx, sql`insert into sso_identities (org_id, id, connection_id, issuer, subject, user_id, email_sealed, linked_at, last_sign_in_at)
                       values (${orgId}, ${ssoIdentityId}, ${connectionId}, ${`https://idp.${slug}.example`}, ${`sub-${slug}`}, ${memberId}, ${asserted}, now(), now())`);
    await exec(tx, sql`insert into sso_tests (org_id, id, connection_id, started_by, created_at, expires_at)
                       values (${orgId}, ${newId()}, ${connectionId}, ${ownerId}, now(), now() + interval '10 minutes')`);
    await exec(tx, sql`insert into org_domains (org_id, id, domain, record_value, created_by, created_at)
                       values (${orgId}, ${newId()}, ${`${slug}.example`}, ${`palisade-verification=${randomToken()}`}, ${ownerId}, now())`);
    await exec(tx, sql`insert into api_keys (org_id, id, token_hash, kind, name, prefix, last_four, permissions, created_by, creator_joined_at, created_at)
                       values (${orgId}, ${newId()}, ${randomToken()}, 'secret', 'ci', 'pal_sk_', 'abcd', ${['projects:read']}, ${ownerId}, now(), now())`);
    const whsec = await sealer.seal(tx, { scope: orgId, table: 'webhook_endpoints', column: 'secret_sealed', row: endpointId }, `whsec_${randomToken()}`);
    await exec(tx, sql`insert into webhook_endpoints (org_id, id, url, events, secret_sealed, created_by, created_at, updated_at)
                       values (${orgId}, ${endpointId}, 'https://hooks.example.com/x', ${['*']}, ${whsec}, ${ownerId}, now(), now())`);
    await exec(tx, sql`insert into webhook_deliveries (org_id, id, endpoint_id, message_id, event_type, payload, status, attempts, created_at)
                       values (${orgId}, ${deliveryId}, ${endpointId}, ${`msg_${slug}`}, 'project.created', '{}', 'succeeded', 1, now())`);
    await exec(tx, sql`insert into webhook_attempts (org_id, delivery_id, attempt, at, status, latency_ms)
                       values (${orgId}, ${deliveryId}, 1, now(), 204, 12)`);
    const credential = await sealer.seal(tx, { scope: orgId, table: 'integration_credentials', column: 'secret_sealed', row: credentialId }, `psa token of ${slug}`);
    await exec(tx, sql`insert into integration_credentials (org_id, id, name, kind, secret_sealed, created_by, created_at, updated_at, use_count)
                       values (${orgId}, ${credentialId}, 'psa', 'api_token', ${credential}, ${ownerId}, now(), now(), 1)`);
    await exec(tx, sql`insert into integration_credential_rotations (org_id, credential_id, version, event, at, by_user)
                       values (${orgId}, ${credentialId}, 1, 'created', now(), ${ownerId})`);
    await exec(tx, sql`insert into integration_credential_uses (org_id, credential_id, use_no, used_by, started_at, finished_at, status)
                       values (${orgId}, ${credentialId}, 1, 'psa-sync', now(), now(), 'ok')`);
    const streamId = newId();
    const streamSecret = await sealer.seal(tx, { scope: orgId, table: 'audit_streams', column: 'secret_sealed', row: streamId }, `whsec_${randomToken()}`);
    await exec(tx, sql`insert into audit_streams (org_id, id, kind, url, secret_sealed, cursor_seq, created_by, created_at, updated_at)
                       values (${orgId}, ${streamId}, 'https', 'https://siem.example.com/x', ${streamSecret}, 0, ${ownerId}, now(), now())`);
    const keyId = whsec.split('.')[1] ?? '';
    await exec(tx, sql`insert into org_key_rotations (org_id, id, from_key_id, to_key_id, trigger, status, started_at, sweep_after, finished_at)
                       values (${orgId}, ${newId()}, ${keyId}, ${keyId}, 'manual', 'done', now(), now(), now())`);
    const exportKey = await sealer.seal(tx, { scope: orgId, table: 'org_exports', column: 'key_sealed', row: exportId }, randomToken(32));
    await exec(tx, sql`insert into org_exports (org_id, id, requested_by, state, created_at, key_sealed) values (${orgId}, ${exportId}, ${ownerId}, 'running', now(), ${exportKey})`);
    await exec(tx, sql`insert into org_export_parts (org_id, export_id, part_no, table_name, file, rows, bytes, sha256)
                       values (${orgId}, ${exportId}, 1, 'assets', 'tables/assets/000001.ndjson', 1, 10, ${randomToken()})`);
    await exec(tx, sql`insert into org_export_links (org_id, id, export_id, token_hash, created_by, created_at, expires_at)
                       values (${orgId}, ${newId()}, ${exportId}, ${randomToken()}, ${ownerId}, now(), now() + interval '15 minutes')`);
    // One available file (its usage row follows from the trigger, migration 041).
    const fileId = newId();
    const fileKey = await sealer.seal(tx, { scope: orgId, table: 'files', column: 'key_sealed', row: fileId }, randomToken(32));
    await exec(tx, sql`insert into files (org_id, project_id, id, name, content_type, state, size_bytes, reserved_bytes, sha256, key_sealed, scanned,
                                          uploaded_by_type, uploaded_by, created_at, touched_at, available_at)
                       values (${orgId}, ${projects[0]}, ${fileId}, 'notes.txt', 'text/plain', 'available', 10, 10, ${'0'.repeat(64)}, ${fileKey}, true,
                               'user', ${ownerId}, now(), now(), now())`);
    await exec(tx, sql`insert into files_gone (org_id, file_id) values (${orgId}, ${newId()})`);
    return sealer.seal(tx, { scope: orgId, table: 'assets', column: 'secret', row: projects[0] }, `secret of ${slug}`);
  });
  return { orgId, slug, ownerId, memberId, customRoleId, invitationId, inboundSourceId, credentialId, exportId, connectionId, endpointId, deliveryId, projects, assets, sealed };
}

/** A minimal org (org row, one project, `assetCount` assets) for the many-tenant tests. */
export async function seedSmallOrg(db: Database, slug: string, assetCount: number): Promise<{ orgId: string; projectId: string }> {
  const orgId = newId();
  const projectId = newId();
  await db.withTenant({ orgId, projectIds: null }, async (tx) => {
    await exec(tx, sql`insert into organizations (org_id, slug, name) values (${orgId}, ${slug}, ${slug})`);
    await exec(tx, sql`insert into projects (org_id, id, name) values (${orgId}, ${projectId}, ${`${slug} project`})`);
    for (let i = 0; i < assetCount; i++) {
      await exec(tx, sql`insert into assets (org_id, project_id, id, name, kind) values (${orgId}, ${projectId}, ${newId()}, ${`a${i}`}, 'host')`);
    }
  });
  return { orgId, projectId };
}

/** Rows per org of a table, read by the owner (which bypasses RLS): the ground truth. */
export async function ownerCounts(owner: OwnerConnection, table: TenantTable): Promise<Map<string, number>> {
  const r = await owner.query<{ org_id: string; n: number }>(`select org_id::text as org_id, count(*)::int as n from ${table} group by org_id`);
  return new Map(r.map((x) => [x.org_id, x.n]));
}

/** The org_id of every row of `table` this transaction can see. */
export async function visibleOrgIds(tx: Tx, table: TenantTable): Promise<string[]> {
  const r = await rows<{ org_id: string }>(tx, sql`select org_id::text as org_id from ${sql.table(table)}`);
  return r.map((x) => x.org_id);
}

export interface Attempt<T> {
  /** 'ok', or the SQLSTATE of the error. */
  state: string;
  message: string;
  value: T | undefined;
}

/**
 * Runs `fn` in its own transaction with `binding` and always rolls it back (so an attack that
 * unexpectedly succeeds leaves nothing behind), reporting how it ended.
 */
export async function attempt<T>(db: Database, binding: TenantBinding, fn: (tx: Tx) => Promise<T>): Promise<Attempt<T>> {
  const marker = new Error('rollback');
  let value: T | undefined;
  try {
    await db.withTenant(binding, async (tx) => {
      value = await fn(tx);
      throw marker;
    });
  } catch (err) {
    if (err === marker) return { state: 'ok', message: '', value };
    const e = err as { code?: string; message?: string };
    return { state: e.code ?? 'no-sqlstate', message: e.message ?? String(err), value: undefined };
  }
  throw new Error('unreachable: the attempt always rolls back');
}
