import { sql, type RawBuilder } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exec } from '../../src/db/database.js';
import { createTestDatabase, ENGINES, type TestDatabase } from '../support/db.js';
import { attempt, auditWriter, seedTenant, type SeededTenant } from '../support/tenants.js';

type Privilege = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

/**
 * Every privilege the runtime role holds on a table, and the code that needs it. A grant that
 * is not here fails this test: adding one to a migration means adding it here, with its reason,
 * for review. UPDATE also covers `select … for update` and `on conflict … do update`; a cascade
 * of a foreign key runs as the table owner and needs nothing here.
 */
const EXPECTED: Readonly<Record<string, readonly Privilege[]>> = {
  // identity/service.ts (registration, password change), lockout.ts, mfa.ts, passkeys.ts, sessions (epoch); never deleted
  users: ['SELECT', 'INSERT', 'UPDATE'],
  // sessions/service.ts: issued, touched, rotated and revoked (a revoked session stays, marked)
  sessions: ['SELECT', 'INSERT', 'UPDATE'],
  // identity/service.ts: a reset token is marked used, not deleted
  password_resets: ['SELECT', 'INSERT', 'UPDATE'],
  // identity/service.ts: a verification link is issued, spent (used_at), and spent or expired ones are purged at the next issue
  email_verifications: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // keys/index.ts: data keys are written once (`on conflict do nothing`)
  system_keys: ['SELECT', 'INSERT'],
  org_keys: ['SELECT', 'INSERT'],
  // mail/outbox.ts: messages are appended; mail/worker.ts changes only their delivery state (EXPECTED_COLUMNS)
  mail_outbox: ['SELECT', 'INSERT'],
  // tenancy/orgs.ts: created and renamed; nothing deletes an org (its audit chain would lose its org)
  organizations: ['SELECT', 'INSERT', 'UPDATE'],
  // tenancy/orgs.ts: created with the org, changed by settings (upsert, row locked)
  org_settings: ['SELECT', 'INSERT', 'UPDATE'],
  // tenancy/roles.ts
  custom_roles: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // tenancy/members.ts, invitations.ts, orgs.ts; sessions/routes.ts (sign-out cutoff)
  memberships: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // tenancy/projects.ts
  projects: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // tenancy/projects.ts, invitations.ts: assigned and unassigned, never edited
  project_access: ['SELECT', 'INSERT', 'DELETE'],
  // assets/service.ts: created and deleted, never edited
  assets: ['SELECT', 'INSERT', 'DELETE'],
  // tenancy/invitations.ts (accept, revoke), roles.ts (a deleted custom role's pending invitations)
  invitations: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // audit/writer.ts: events appended only; the head is moved (and locked) by each append
  audit_events: ['SELECT', 'INSERT'],
  audit_heads: ['SELECT', 'INSERT', 'UPDATE'],
  // identity/mfa.ts, factors.ts
  totp_credentials: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  recovery_codes: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  mfa_challenges: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // identity/passkeys.ts
  passkeys: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  webauthn_challenges: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // api-keys/service.ts, usage.ts: revoked keys stay, marked
  api_keys: ['SELECT', 'INSERT', 'UPDATE'],
  // sso/sign-in.ts: an IdP subject is linked and its last sign-in noted; links leave with their user or connection (cascade)
  // tenancy/subject.ts: an erased member's identity links go (migration 035)
  sso_identities: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // sso/sign-in.ts: a handover code is issued and spent (used_at); never deleted by the runtime
  sso_handovers: ['SELECT', 'INSERT', 'UPDATE'],
  // sso/connection-tests.ts: a run is started and its result recorded once; rows leave with their connection
  sso_tests: ['SELECT', 'INSERT', 'UPDATE'],
  // identity/magic-link.ts: a link is issued and spent (used_at); rows leave with their user
  magic_links: ['SELECT', 'INSERT', 'UPDATE'],
  // social/accounts.ts: a provider identity is linked and its last sign-in noted; identities.ts: its user unlinks it; links leave with their user (cascade)
  social_identities: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // webhooks/service.ts, worker.ts
  webhook_endpoints: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // webhooks/outbox.ts, worker.ts: the delivery log is kept (rows leave with their endpoint)
  webhook_deliveries: ['SELECT', 'INSERT', 'UPDATE'],
  webhook_attempts: ['SELECT', 'INSERT'],
  // webhooks/outbox.ts, worker.ts: the due queue
  webhook_due: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // audit-streams/service.ts, worker.ts: a stream is added, changed (its cursor and status by the worker) and deleted
  audit_streams: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // audit-streams/service.ts, worker.ts: which orgs the stream worker looks at, and when
  audit_stream_orgs: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // keys/data-key-rotation.ts: a rotation is started, advanced and finished; rows are the org's key history (cascade with the org)
  org_key_rotations: ['SELECT', 'INSERT', 'UPDATE'],
  // keys/rotation-job.ts: the due queue of data-key work
  data_key_due: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // exports/service.ts, archive.ts, job.ts: an export advances and ends by update (its row stays);
  // parts are appended with each batch; a link is spent by update; the due queue; the signing key is made once
  org_exports: ['SELECT', 'INSERT', 'UPDATE'],
  org_export_parts: ['SELECT', 'INSERT'],
  org_export_links: ['SELECT', 'INSERT', 'UPDATE'],
  export_due: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  export_signing_keys: ['SELECT', 'INSERT'],
  // files/service.ts, quota.ts: a file is received (its reservation grows), made available or
  // refused (deleted), and deleted; the org's usage row is kept by the files_usage trigger
  files: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  org_file_usage: ['SELECT', 'INSERT', 'UPDATE'],
  // files/service.ts: the bytes of a gone row are deleted from the store, then its entry (the files_gone trigger adds them)
  files_gone: ['SELECT', 'INSERT', 'DELETE'],
  // inbound/service.ts: a deleted source is emptied, not removed; applied event ids are kept
  inbound_sources: ['SELECT', 'INSERT', 'UPDATE'],
  inbound_events: ['SELECT', 'INSERT'],
  // credentials/service.ts, vault.ts: a deleted credential is emptied, not removed; its rotation history and use log are kept
  integration_credentials: ['SELECT', 'INSERT', 'UPDATE'],
  integration_credential_rotations: ['SELECT', 'INSERT'],
  integration_credential_uses: ['SELECT', 'INSERT'],
  // sso/domains.ts: a claim is verified (verified_at) or removed; the global domain → org entry is added or removed
  org_domains: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  verified_domains: ['SELECT', 'INSERT', 'DELETE'],
  // sso/saml.ts: a SAML connection's ACS route is added with it and leaves with it (cascade);
  // requests are issued and spent (used_at), accepted assertion ids recorded; both swept when expired
  saml_acs_routes: ['SELECT', 'INSERT'],
  saml_requests: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  saml_assertions: ['SELECT', 'INSERT', 'DELETE'],
  // sso/connections.ts
  sso_connections: ['SELECT', 'INSERT', 'UPDATE', 'DELETE'],
  // sso/enforcement.ts: an org's enforcement is switched on and off (enforced_since) and its
  // break-glass owners named; the row stays (it leaves with its org, cascade)
  sso_enforcement: ['SELECT', 'INSERT', 'UPDATE'],
};

/**
 * Column grants beyond the table privileges above, each with its reason: the mail worker
 * records delivery (mail/worker.ts) but cannot rewrite a message's recipient, subject or body.
 */
const EXPECTED_COLUMNS = [
  // keys/data-key-rotation.ts re-seals an audit event's personal part (migration 034); a row
  // trigger refuses a change of any other column and a part given to an event that had none.
  { relname: 'audit_events', attname: 'personal_sealed', priv: 'UPDATE' },
  // mail/worker.ts records delivery, and a message that reached its end forgets its recipient and
  // body (body_sealed, to_index, to_sealed: migration 039); the mail_outbox_forget_only trigger
  // refuses any other change of those three.
  ...['attempts', 'body_sealed', 'last_error', 'next_attempt_at', 'sent_at', 'status', 'to_index', 'to_sealed']
    .map((attname) => ({ relname: 'mail_outbox', attname, priv: 'UPDATE' })),
  // keys/rotation.ts: a data key is retired, reactivated (rollback) and destroyed; the
  // org_keys_guard trigger (migration 028) refuses any other change of its material.
  ...['active', 'destroy_after', 'destroyed_at', 'kek_id', 'retired_at', 'wrapped'].map((attname) => ({ relname: 'org_keys', attname, priv: 'UPDATE' })),
];

/**
 * Functions the runtime role may call: SECURITY INVOKER, but for palisade_erase_member, the one
 * DEFINER function the catalog check allows (db/catalog.ts DEFINERS_ALLOWED says why).
 */
const EXPECTED_FUNCTIONS = ['public.palisade_erase_member', 'public.palisade_key_in_org', 'public.palisade_membership', 'public.palisade_session_in_org'];

describe.each(ENGINES)('the runtime role\'s privileges on %s', (engine) => {
  let t: TestDatabase;
  let a: SeededTenant;
  const role = () => t.db.runtimeRole;
  const q = <R>(text: string, params: unknown[] = []) => t.owner.query<R>(text, params);

  beforeAll(async () => {
    t = await createTestDatabase(engine);
    a = await seedTenant(t.db, auditWriter(t.db), 'alpha');
  });
  afterAll(async () => t?.drop());

  // review R4 finding 3
  it('are exactly the table privileges the code needs, listed above', async () => {
    const held = await q<{ relname: string; priv: Privilege }>(
      `select case when n.nspname = 'public' then c.relname else n.nspname || '.' || c.relname end as relname, p.priv
       from pg_class c join pg_namespace n on n.oid = c.relnamespace
       cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER']) as p(priv)
       where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'
         and c.relkind in ('r', 'p', 'v', 'm', 'f') and has_table_privilege($1, c.oid, p.priv)
       order by 1, array_position(array['SELECT', 'INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'], p.priv)`,
      [role()],
    );
    const actual: Record<string, Privilege[]> = {};
    for (const r of held) (actual[r.relname] ??= []).push(r.priv);
    expect(actual).toEqual(EXPECTED);
  });

  it('hold no column-level grant beyond the tables\' but the listed ones, and no sequence', async () => {
    const columns = await q<{ relname: string; attname: string; priv: string }>(
      `select c.relname, a.attname, p.priv
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
       cross join unnest(array['SELECT', 'INSERT', 'UPDATE', 'REFERENCES']) as p(priv)
       where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
         and a.attnum > 0 and not a.attisdropped
         and has_column_privilege($1, c.oid, a.attnum, p.priv) and not has_table_privilege($1, c.oid, p.priv)
       order by c.relname, a.attname, p.priv`,
      [role()],
    );
    expect(columns).toEqual(EXPECTED_COLUMNS);
    const sequences = await q<{ relname: string }>(
      `select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
       where c.relkind = 'S' and n.nspname not in ('pg_catalog', 'information_schema')
         and (has_sequence_privilege($1, c.oid, 'USAGE') or has_sequence_privilege($1, c.oid, 'UPDATE'))`,
      [role()],
    );
    expect(sequences).toEqual([]);
  });

  it('use the public schema only, create nothing, belong to no role, and call only the listed functions', async () => {
    const schemas = await q<{ nspname: string; priv: string }>(
      `select n.nspname, p.priv from pg_namespace n cross join unnest(array['USAGE', 'CREATE']) as p(priv)
       where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'
         and has_schema_privilege($1, n.oid, p.priv) order by 1, 2`,
      [role()],
    );
    expect(schemas).toEqual([{ nspname: 'public', priv: 'USAGE' }]);
    const database = await q<{ priv: string }>(
      `select p.priv from unnest(array['CREATE', 'TEMPORARY']) as p(priv) where has_database_privilege($1, current_database(), p.priv)`,
      [role()],
    );
    expect(database).toEqual([]);
    const memberOf = await q<{ rolname: string }>(
      `select g.rolname from pg_auth_members m join pg_roles g on g.oid = m.roleid join pg_roles r on r.oid = m.member where r.rolname = $1`,
      [role()],
    );
    expect(memberOf).toEqual([]);
    const functions = await q<{ name: string }>(
      `select distinct n.nspname || '.' || p.proname as name from pg_proc p join pg_namespace n on n.oid = p.pronamespace
       where n.nspname not in ('pg_catalog', 'information_schema')
         and has_function_privilege($1, p.oid, 'EXECUTE') and has_schema_privilege($1, n.oid, 'USAGE') order by 1`,
      [role()],
    );
    expect(functions.map((f) => f.name)).toEqual(EXPECTED_FUNCTIONS);
  });

  // review R4 finding 3
  it('cannot delete its own organization, users or sessions, nor rewrite data keys or a queued mail', async () => {
    const own = { orgId: a.orgId, userId: a.ownerId, projectIds: null };
    // A queued mail for the attacks on the outbox to reach (the trigger judges rows, not columns).
    await t.owner.query(`insert into mail_outbox (id, to_sealed, to_index, subject, body_sealed, status, next_attempt_at)
                         values (gen_random_uuid(), 'v1.sealed', 'index', 'queued', 'v1.body', 'pending', now())`);
    const attacks: [string, RawBuilder<unknown>][] = [
      ['delete the org', sql`delete from organizations where org_id = ${a.orgId}`],
      ['delete a user', sql`delete from users where id = ${a.ownerId}`],
      ['delete sessions', sql`delete from sessions`],
      // Retiring is allowed (rotation), but only with its destruction date; key material is written once.
      ['deactivate data keys', sql`update org_keys set active = false where org_id = ${a.orgId}`],
      ['rewrite a data key', sql`update org_keys set wrapped = 'x' where org_id = ${a.orgId}`],
      ['delete data keys', sql`delete from org_keys where org_id = ${a.orgId}`],
      ['shadow a table', sql`create temporary table users (id uuid)`],
      // The mail worker records delivery only: a queued reset link cannot be redirected or rewritten.
      // The recipient is sealed and found by its blind index (migration 039): neither can be changed.
      ['redirect a queued mail', sql`update mail_outbox set to_sealed = 'forged', to_index = 'forged'`],
      ['reseal a queued mail\'s recipient', sql`update mail_outbox set to_sealed = 'forged'`],
      ['re-index a queued mail\'s recipient', sql`update mail_outbox set to_index = 'forged'`],
      ['rewrite a queued mail', sql`update mail_outbox set subject = 'x', body_sealed = 'x'`],
      ['rewrite a queued mail\'s body', sql`update mail_outbox set body_sealed = 'x'`],
      ['drop a queued mail before it is sent', sql`update mail_outbox set to_sealed = '', to_index = '', body_sealed = ''`],
      ['mark a mail sent and keep a forged recipient', sql`update mail_outbox set status = 'sent', to_sealed = 'forged'`],
      ['delete a queued mail', sql`delete from mail_outbox`],
    ];
    for (const [name, statement] of attacks) {
      const r = await attempt(t.db, own, (tx) => exec(tx, statement));
      expect(r.state, name).toBe('42501');
    }
    expect((await q<{ n: number }>('select count(*)::int as n from organizations where org_id = $1', [a.orgId]))[0]?.n).toBe(1);
  });
});
