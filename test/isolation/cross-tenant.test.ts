import { sql, type RawBuilder } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId, randomToken } from '../../src/crypto/index.js';
import { exec, rows, type TenantBinding } from '../../src/db/database.js';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/db.js';
import {
  attempt, auditWriter, ownerCounts, seedTenant, TENANT_TABLES, visibleOrgIds, type SeededTenant, type TenantTable,
} from '../support/tenants.js';

const RLS_VIOLATION = /new row violates row-level security policy/;

/**
 * An INSERT of a row belonging to `target`, otherwise valid (real parent ids of `target`, no
 * conflict: `on conflict do nothing`), so that the only thing that can reject it is the tenant
 * policy. `actor` is the attacker's org, whose user tries to get into `target`.
 */
function insertInto(table: TenantTable, target: SeededTenant, actor: SeededTenant): RawBuilder<unknown> {
  const org = target.orgId;
  const id = newId();
  const tail = sql`on conflict do nothing`;
  switch (table) {
    case 'organizations':
      return sql`insert into organizations (org_id, slug, name) values (${org}, ${`x-${id.slice(0, 8)}`}, 'x') ${tail}`;
    case 'org_settings':
      return sql`insert into org_settings (org_id, session_idle_seconds) values (${org}, 600) ${tail}`;
    case 'org_keys':
      return sql`insert into org_keys (org_id, id, kek_id, wrapped, active) values (${org}, ${id}, 'k1', 'forged', false) ${tail}`;
    case 'custom_roles':
      return sql`insert into custom_roles (org_id, id, name, permissions) values (${org}, ${id}, ${`r-${id}`}, ${['org:delete']}) ${tail}`;
    case 'memberships':
      return sql`insert into memberships (org_id, user_id, role) values (${org}, ${actor.memberId}, 'owner') ${tail}`;
    case 'projects':
      return sql`insert into projects (org_id, id, name) values (${org}, ${id}, 'planted') ${tail}`;
    case 'project_access':
      return sql`insert into project_access (org_id, project_id, user_id) values (${org}, ${target.projects[1]}, ${target.memberId}) ${tail}`;
    case 'assets':
      return sql`insert into assets (org_id, project_id, id, name, kind) values (${org}, ${target.projects[0]}, ${id}, 'planted', 'host') ${tail}`;
    case 'invitations':
      return sql`insert into invitations (org_id, id, email, role, token_hash, invited_by, expires_at)
                 values (${org}, ${id}, 'evil@x.test', 'owner', ${randomToken()}, ${actor.ownerId}, now() + interval '1 day') ${tail}`;
    case 'audit_events':
      return sql`insert into audit_events (org_id, seq, id, at, actor_type, action, result, prev_hash, hash)
                 values (${org}, 999999, ${id}, now(), 'user', 'forged', 'success', 'p', 'h') ${tail}`;
    case 'audit_heads':
      return sql`insert into audit_heads (org_id, seq, hash) values (${org}, 0, 'forged') ${tail}`;
    case 'inbound_sources':
      return sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
                 values (${org}, ${id}, 'stripe', 'planted', 'forged', ${actor.ownerId}, now()) ${tail}`;
    case 'inbound_events':
      // A planted event id would make the real event look like a replay.
      return sql`insert into inbound_events (org_id, source_id, event_id, type, received_at)
                 values (${org}, ${target.inboundSourceId}, ${`evt_${id}`}, 'forged', now()) ${tail}`;
    case 'api_keys':
      // A planted key would be a credential into the target org.
      return sql`insert into api_keys (org_id, id, token_hash, kind, name, prefix, last_four, permissions, created_by, creator_joined_at, created_at)
                 values (${org}, ${id}, ${randomToken()}, 'secret', 'planted', 'pal_sk_', 'abcd', ${['projects:read']}, ${target.ownerId}, now(), now()) ${tail}`;
    case 'audit_streams':
      // A planted stream would carry the target org's whole audit trail to the attacker.
      return sql`insert into audit_streams (org_id, id, kind, url, secret_sealed, cursor_seq, created_by, created_at, updated_at)
                 values (${org}, ${id}, 'https', 'https://evil.example/', 'forged', 0, ${actor.ownerId}, now(), now()) ${tail}`;
    case 'webhook_endpoints':
      // A planted endpoint would receive the target org's events.
      return sql`insert into webhook_endpoints (org_id, id, url, events, secret_sealed, created_by, created_at, updated_at)
                 values (${org}, ${id}, 'https://evil.example/', ${['*']}, 'forged', ${actor.ownerId}, now(), now()) ${tail}`;
    case 'webhook_deliveries':
      return sql`insert into webhook_deliveries (org_id, id, endpoint_id, message_id, event_type, payload, status, created_at)
                 values (${org}, ${id}, ${target.endpointId}, 'msg_forged', 'project.created', '{}', 'pending', now()) ${tail}`;
    case 'webhook_attempts':
      return sql`insert into webhook_attempts (org_id, delivery_id, attempt, at, latency_ms)
                 values (${org}, ${target.deliveryId}, 99, now(), 1) ${tail}`;
    case 'sso_connections':
      // A planted connection would let the attacker's IdP sign people in to the target org.
      return sql`insert into sso_connections (org_id, id, kind, name, settings, created_by, created_at, updated_at)
                 values (${org}, ${id}, 'oidc', 'planted', '{}'::jsonb, ${actor.ownerId}, now(), now()) ${tail}`;
    case 'org_domains':
      // A planted verified claim would route the domain's sign-ins to the target org.
      return sql`insert into org_domains (org_id, id, domain, record_value, created_by, created_at, verified_at)
                 values (${org}, ${id}, ${`planted-${id.slice(0, 8)}.example`}, 'x', ${actor.ownerId}, now(), now()) ${tail}`;
    case 'sso_identities':
      // A planted link would sign the attacker's IdP subject in as the target's owner.
      return sql`insert into sso_identities (org_id, id, connection_id, issuer, subject, user_id, email_sealed, linked_at, last_sign_in_at)
                 values (${org}, ${id}, ${target.connectionId}, 'https://evil.example', ${id}, ${target.ownerId}, 'forged', now(), now()) ${tail}`;
    case 'sso_tests':
      // A planted run would show the target's admin claims of the attacker's choosing.
      return sql`insert into sso_tests (org_id, id, connection_id, started_by, created_at, expires_at, status)
                 values (${org}, ${id}, ${target.connectionId}, ${target.ownerId}, now(), now() + interval '10 minutes', 'succeeded') ${tail}`;
    case 'integration_credentials':
      // A planted credential would hand the target's host code a value of the attacker's choosing.
      return sql`insert into integration_credentials (org_id, id, name, kind, secret_sealed, created_by, created_at, updated_at)
                 values (${org}, ${id}, ${`planted-${id.slice(0, 8)}`}, 'api_token', 'forged', ${actor.ownerId}, now(), now()) ${tail}`;
    case 'integration_credential_rotations':
      return sql`insert into integration_credential_rotations (org_id, credential_id, version, event, at, by_user, reason)
                 values (${org}, ${target.credentialId}, 99, 'replaced', now(), ${actor.ownerId}, 'forged') ${tail}`;
    case 'integration_credential_uses':
      return sql`insert into integration_credential_uses (org_id, credential_id, use_no, used_by, started_at, finished_at, status)
                 values (${org}, ${target.credentialId}, 99, 'forged', now(), now(), 'ok') ${tail}`;
    case 'org_key_rotations':
      // A planted rotation would block the target's own rotations (one runs at a time) or show forged progress.
      return sql`insert into org_key_rotations (org_id, id, from_key_id, to_key_id, trigger, status, started_at, sweep_after)
                 values (${org}, ${id}, ${id}, ${id}, 'manual', 'running', now(), now()) ${tail}`;
    case 'org_exports':
      // A planted export would block the target's own (one at a time) or, done, be offered for download.
      return sql`insert into org_exports (org_id, id, requested_by, state, created_at, key_sealed) values (${org}, ${id}, ${actor.ownerId}, 'done', now(), 'forged') ${tail}`;
    case 'org_export_parts':
      return sql`insert into org_export_parts (org_id, export_id, part_no, table_name, file, rows, bytes, sha256)
                 values (${org}, ${target.exportId}, 99, 'assets', 'tables/assets/forged.ndjson', 1, 1, 'forged') ${tail}`;
    case 'org_export_links':
      // A planted link would be a token of the attacker's into the target's archive.
      return sql`insert into org_export_links (org_id, id, export_id, token_hash, created_by, created_at, expires_at)
                 values (${org}, ${id}, ${target.exportId}, ${randomToken()}, ${actor.ownerId}, now(), now() + interval '1 hour') ${tail}`;
    case 'files':
      // A planted file would be listed and served to the target's members as their own.
      return sql`insert into files (org_id, project_id, id, name, content_type, state, size_bytes, reserved_bytes, sha256, key_sealed, scanned,
                                    uploaded_by_type, uploaded_by, created_at, touched_at, available_at)
                 values (${org}, ${target.projects[0]}, ${id}, 'planted.html', 'text/html', 'available', 1, 1, ${'0'.repeat(64)}, 'forged', true,
                         'user', ${actor.ownerId}, now(), now(), now()) ${tail}`;
    case 'files_gone':
      // A planted entry would have the target's file bytes deleted from the store.
      return sql`insert into files_gone (org_id, file_id) values (${org}, ${id}) ${tail}`;
    case 'org_file_usage':
      // A planted usage row would fill the target's quota.
      return sql`insert into org_file_usage (org_id, bytes) values (${org}, 1099511627776) ${tail}`;
  }
}

/**
 * Tables the runtime role may not UPDATE (append-only, or never edited) or DELETE from (chain
 * heads, orgs, kept or soft-deleted rows): the privileges the code does not use are not granted
 * (test/isolation/runtime-grants.test.ts lists every one it keeps).
 */
const NO_UPDATE: readonly TenantTable[] = [
  'files_gone', 'audit_events', 'inbound_events', 'webhook_attempts', 'org_keys', 'project_access', 'assets', 'integration_credential_rotations', 'integration_credential_uses',
  'org_export_parts',
];
const NO_DELETE: readonly TenantTable[] = [
  'audit_heads', 'inbound_sources', 'api_keys', 'organizations', 'org_settings', 'org_keys', 'webhook_deliveries', 'sso_tests',
  'integration_credentials', 'integration_credential_rotations', 'integration_credential_uses',
  'org_key_rotations', 'org_exports', 'org_export_parts', 'org_export_links', 'org_file_usage',
];

describe.each(ENGINES)('cross-tenant raw SQL as the runtime role on %s', (engine) => {
  let t: TestDatabase;
  let a: SeededTenant;
  let b: SeededTenant;
  const before = new Map<TenantTable, Map<string, number>>();

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    const audit = auditWriter(t.db);
    a = await seedTenant(t.db, audit, 'alpha');
    b = await seedTenant(t.db, audit, 'bravo');
    for (const table of TENANT_TABLES) before.set(table, await ownerCounts(t.owner, table));
  });
  afterAll(async () => t?.drop());

  /** A's binding: full org, every project, no user. */
  const A = (): TenantBinding => ({ orgId: a.orgId, projectIds: null });

  it('seeds both orgs in every tenant table (so that "zero rows" below means something)', () => {
    for (const table of TENANT_TABLES) {
      const counts = before.get(table);
      expect(counts?.get(a.orgId), `${table} rows of A`).toBeGreaterThan(0);
      expect(counts?.get(b.orgId), `${table} rows of B`).toBeGreaterThan(0);
    }
  });

  it.each(TENANT_TABLES)('%s: A sees exactly its own rows and none of B', async (table) => {
    const seen = await t.db.withTenant({ orgId: a.orgId, projectIds: null }, async (tx) => ({
      all: await visibleOrgIds(tx, table),
      ofB: await rows<{ n: number }>(tx, sql`select count(*)::int as n from ${sql.table(table)} where org_id = ${b.orgId}`),
    }));
    expect(seen.all.length).toBe(before.get(table)?.get(a.orgId));
    expect(new Set(seen.all)).toEqual(new Set([a.orgId]));
    expect(seen.ofB[0]?.n).toBe(0);
  });

  it('cannot reach B through known ids or joins either', async () => {
    const found = await t.db.withTenant(A(), async (tx) => ({
      project: await rows(tx, sql`select id from projects where id = ${b.projects[0]}`),
      asset: await rows(tx, sql`select a.id from assets a join projects p using (org_id) where a.id = ${b.assets[b.projects[0]]?.[0] ?? ''}`),
      invitation: await rows(tx, sql`select id from invitations where id = ${b.invitationId}`),
      role: await rows(tx, sql`select id from custom_roles where id = ${b.customRoleId}`),
      member: await rows(tx, sql`select user_id from memberships where user_id = ${b.ownerId}`),
      org: await rows(tx, sql`select org_id from organizations where slug = ${b.slug}`),
      inboundSource: await rows(tx, sql`select id from inbound_sources where id = ${b.inboundSourceId}`),
      credential: await rows(tx, sql`select id from integration_credentials where id = ${b.credentialId} or name = 'psa' and org_id = ${b.orgId}`),
    }));
    expect(found).toEqual({ project: [], asset: [], invitation: [], role: [], member: [], org: [], inboundSource: [], credential: [] });
  });

  it.each(TENANT_TABLES)('%s: INSERT of a row of B is rejected by WITH CHECK (and valid under B)', async (table) => {
    const asA = await attempt(t.db, A(), (tx) => exec(tx, insertInto(table, b, a)));
    expect(asA.state).toBe('42501');
    expect(asA.message).toMatch(RLS_VIOLATION);
    // Control: the very same statement is acceptable when bound to B, so RLS is what refused it.
    const asB = await attempt(t.db, { orgId: b.orgId, projectIds: null }, (tx) => exec(tx, insertInto(table, b, a)));
    expect(asB.state).toBe('ok');
  });

  it.each(TENANT_TABLES)('%s: UPDATE moving a row of A into B is rejected', async (table) => {
    const moved = await attempt(t.db, A(), (tx) => exec(tx, sql`update ${sql.table(table)} set org_id = ${b.orgId} where org_id = ${a.orgId}`));
    expect(moved.state).toBe('42501');
    // Tables without an UPDATE grant refuse it outright; everywhere else the tenant policy refuses.
    expect(moved.message).toMatch(NO_UPDATE.includes(table) ? /permission denied/ : RLS_VIOLATION);
  });

  it.each(TENANT_TABLES.filter((x) => !NO_UPDATE.includes(x)))('%s: UPDATE and DELETE of B rows affect nothing', async (table) => {
    const updated = await t.db.withTenant(A(), (tx) => exec(tx, sql`update ${sql.table(table)} set org_id = org_id where org_id = ${b.orgId}`));
    expect(updated).toBe(0);
    const deleted = await attempt(t.db, A(), (tx) => exec(tx, sql`delete from ${sql.table(table)} where org_id = ${b.orgId}`));
    // Tables nothing deletes from (chain heads, orgs, data keys, kept or soft-deleted rows) have no DELETE grant.
    expect(deleted.state).toBe(NO_DELETE.includes(table) ? '42501' : 'ok');
    if (deleted.state === 'ok') expect(deleted.value).toBe(0);
    // Control: the same UPDATE does reach A's own rows.
    const own = await attempt(t.db, A(), (tx) => exec(tx, sql`update ${sql.table(table)} set org_id = org_id where org_id = ${a.orgId}`));
    expect(own.value).toBe(before.get(table)?.get(a.orgId));
  });

  it('cannot reference B rows from A rows (composite foreign keys)', async () => {
    const asset = await attempt(t.db, A(), (tx) =>
      exec(tx, sql`insert into assets (org_id, project_id, id, name, kind) values (${a.orgId}, ${b.projects[0]}, ${newId()}, 'x', 'host')`));
    expect(asset.state).toBe('23503');
    const access = await attempt(t.db, A(), (tx) =>
      exec(tx, sql`insert into project_access (org_id, project_id, user_id) values (${a.orgId}, ${a.projects[0]}, ${b.ownerId})`));
    expect(access.state).toBe('23503');
    const role = await attempt(t.db, A(), (tx) =>
      exec(tx, sql`update memberships set role = 'custom', custom_role_id = ${b.customRoleId} where org_id = ${a.orgId} and user_id = ${a.memberId}`));
    expect(role.state).toBe('23503');
  });

  it('a user binding reveals only that user\'s own memberships and orgs elsewhere, read-only', async () => {
    const seen = await t.db.withTenant({ orgId: a.orgId, userId: b.memberId, projectIds: null }, async (tx) => ({
      memberships: await rows<{ org_id: string; user_id: string }>(tx, sql`select org_id::text, user_id::text from memberships where org_id = ${b.orgId}`),
      orgs: await rows<{ slug: string }>(tx, sql`select slug from organizations order by slug`),
      projectsOfB: await rows(tx, sql`select id from projects where org_id = ${b.orgId}`),
      updated: await exec(tx, sql`update memberships set role = 'owner' where org_id = ${b.orgId}`),
    }));
    expect(seen.memberships).toEqual([{ org_id: b.orgId, user_id: b.memberId }]);
    expect(seen.orgs.map((o) => o.slug)).toEqual(['alpha', 'bravo']);
    expect(seen.projectsOfB).toEqual([]);
    expect(seen.updated).toBe(0);
  });

  // PGlite's only session is a superuser that enters the runtime role with SET LOCAL ROLE, so raw
  // SQL could RESET ROLE there: the embedded engine isolates application code, not hostile SQL
  // (docs/threat-model.md). The attack is a PostgreSQL-only test, not a skipped one.
  if (engine === 'postgres') it('cannot leave the runtime role (SET ROLE, SET SESSION AUTHORIZATION, RESET ROLE)', async () => {
    for (const q of [sql`set local role postgres`, sql`set role postgres`, sql`set session authorization postgres`]) {
      const r = await attempt(t.db, A(), (tx) => exec(tx, q));
      expect(r.state).toBe('42501');
    }
    const reset = await attempt(t.db, A(), async (tx) => {
      await sql`reset role`.execute(tx);
      return rows<{ u: string; n: number }>(tx, sql`select current_user as u, count(*)::int as n from assets where org_id = ${b.orgId}`);
    });
    expect(reset.value).toEqual([{ u: t.db.runtimeRole, n: 0 }]);
  });

  it('no planner statistics of tenant tables are readable (pg_stats hides RLS tables)', async () => {
    await t.owner.script('analyze');
    const stats = await t.db.withTenant(A(), (tx) =>
      rows<{ tablename: string }>(tx, sql`select distinct tablename::text from pg_stats where schemaname = 'public' and tablename = any(${[...TENANT_TABLES]})`));
    expect(stats).toEqual([]);
    const global = await t.db.withTenant(A(), (tx) => rows(tx, sql`select 1 from pg_stats where schemaname = 'public' and tablename = 'users'`));
    expect(global.length).toBeGreaterThan(0);
  });

  it('left every row of B untouched', async () => {
    for (const table of TENANT_TABLES) {
      expect((await ownerCounts(t.owner, table)).get(b.orgId), table).toBe(before.get(table)?.get(b.orgId));
    }
    const keys = await t.owner.query<{ wrapped: string }>(`select wrapped from org_keys where org_id = $1`, [b.orgId]);
    expect(keys.map((k) => k.wrapped)).not.toContain('forged');
  });
});
