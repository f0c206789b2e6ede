import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, testConfig, type TestApp } from '../../../test/support/app.js';
import { ENGINES, PG_ADMIN_URL } from '../../../test/support/db.js';
import { newId } from '../../crypto/index.js';
import pg from 'pg';
import { listMigrations, migrate } from '../../db/migrate.js';
import { pgOwner } from '../../db/open.js';
import { outboxRef } from '../mail/index.js';
import { migrationSteps } from '../../main.js';
import { SEALED_PEOPLE_MIGRATION } from './seal-people.js';

/** Accounts and queued mail written before migration 039, which sealed their addresses and names. */
describe.each(ENGINES)('upgrading to migration 039 on %s', (engine) => {
  let h: TestApp;
  let people: { id: string; email: string; name: string }[];
  beforeAll(async () => {
    h = await createTestApp(engine);
    people = [];
    for (const l of h.demo.logins) {
      const p = await h.person(l.userId);
      if (!p) throw new Error(`no person ${l.email}`);
      people.push({ id: l.userId, ...p });
    }
  });
  afterAll(async () => h?.close());

  /** The database as migration 039 finds it: addresses and names in clear, 039 not applied. */
  async function before039(extra: { id: string; email: string }[] = []): Promise<void> {
    const values = [...people, ...extra.map((e) => ({ ...e, name: 'legacy' }))];
    await h.t.owner.script(`
      alter table users add column email text not null default '', add column name text not null default '';
      alter table mail_outbox add column to_address text not null default '';
      delete from mail_outbox;
      alter table users drop column email_sealed, drop column name_sealed, drop column email_index, drop column email_domain_index;
      alter table mail_outbox drop column to_sealed, drop column to_index;
      alter table sso_identities drop column id, drop column email_sealed;
      alter table social_identities drop column id, drop column email_sealed;
      drop trigger mail_outbox_forget_only on mail_outbox;
      drop function palisade_admin.mail_outbox_forget_only();
      delete from public.schema_migrations where version = '${SEALED_PEOPLE_MIGRATION}'`);
    for (const p of values) {
      await h.t.owner.query('insert into users (id, email, name) values ($1, $2, $3) on conflict (id) do update set email = excluded.email, name = excluded.name', [p.id, p.email, p.name]);
    }
    const mailId = newId();
    const body = await h.t.db.withSystem('test: seal a body', (tx) => h.built.services.sealer.seal(tx, outboxRef(mailId), 'queued before 039'));
    await h.t.owner.query(`insert into mail_outbox (id, to_address, subject, body_sealed) values ($1, $2, 'old mail', $3)`, [mailId, people[0]?.email, body]);
  }
  const migrateWith = (keyedSteps: ReturnType<typeof migrationSteps>) =>
    migrate(h.t.owner, { runtimeRole: h.t.db.runtimeRole, runtimePassword: null, login: engine === 'postgres', keyedSteps });
  const applied = async () =>
    (await h.t.owner.query('select 1 from public.schema_migrations where version = $1', [SEALED_PEOPLE_MIGRATION])).length === 1;
  const columns = async (table: string) =>
    (await h.t.owner.query<{ c: string }>(`select column_name as c from information_schema.columns where table_name = $1 order by 1`, [table])).map((r) => r.c);

  it('is refused without the keys when accounts exist, leaving nothing applied', async () => {
    await before039();
    await expect(migrateWith(undefined)).rejects.toThrow('migration 039 seals the existing accounts');
    expect(await applied()).toBe(false);
    expect(await columns('users')).toContain('email');
  });

  it('refuses two accounts whose addresses are one once normalised, leaving nothing applied', async () => {
    // Upper case was already one address (the old unique index was on lower(email)); a trailing
    // space was not, and the blind index of the normalised address would join them.
    const first = people[0];
    if (!first) throw new Error('no demo people');
    await h.t.owner.query(`insert into users (id, email, name) values (gen_random_uuid(), $1, 'twin')`, [`${first.email} `]);
    await expect(migrateWith(migrationSteps(testConfig()))).rejects.toThrow('have the same address once normalised');
    expect(await applied()).toBe(false);
    expect(await columns('users')).toContain('email');
    await h.t.owner.query(`delete from users where name = 'twin'`);
  });

  it('seals every account and queued recipient in the migration transaction, then drops the clear columns', async () => {
    await migrateWith(migrationSteps(testConfig()));
    expect(await applied()).toBe(true);
    expect(await columns('users')).not.toContain('email');
    expect(await columns('users')).not.toContain('name');
    expect(await columns('mail_outbox')).not.toContain('to_address');
    const raw = JSON.stringify(await h.t.owner.query('select * from users'));
    for (const p of people) {
      expect(raw).not.toContain(p.email);
      // Opened as the running code opens them, and found by the blind index it computes.
      expect(await h.person(p.id)).toEqual({ email: p.email, name: p.name });
      expect(await h.userId(p.email.toUpperCase())).toBe(p.id);
    }
    // A demo account signs in with its password: the lookup is the blind index.
    await h.login(h.user('acme', 'admin'));
    const queued = await h.t.db.withSystem('test: read the outbox', (tx) => h.built.services.mail.read(tx, people[0]?.email));
    expect(queued.find((m) => m.subject === 'old mail')).toEqual({ to: people[0]?.email, subject: 'old mail', body: 'queued before 039' });
  });
});

/**
 * A managed database's migrator owns the tables but does not bypass row-level security, which is
 * forced on tenant tables: 039 must still reach every org's rows (review of 039, findings 1 and 2).
 */
describe('migration 039 applied by an owner without BYPASSRLS on postgres', () => {
  const suffix = newId().slice(0, 8);
  const dbName = `p39_${suffix}`;
  const ownerRole = `p39_owner_${suffix}`;
  const runtimeRole = `p39_rt_${suffix}`;
  const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
  let owner: ReturnType<typeof pgOwner>;

  beforeAll(async () => {
    await admin.connect();
    await admin.query(`create role ${ownerRole} login nosuperuser nobypassrls createrole password 'p39'`);
    await admin.query(`create database ${dbName} owner ${ownerRole}`);
    const url = new URL(PG_ADMIN_URL);
    url.username = ownerRole;
    url.password = 'p39';
    url.pathname = `/${dbName}`;
    owner = pgOwner(url.toString());
  });
  afterAll(async () => {
    await owner?.close();
    await admin.query(`drop database if exists ${dbName} with (force)`);
    await admin.query(`drop role if exists ${runtimeRole}`);
    await admin.query(`drop role if exists ${ownerRole}`);
    await admin.end();
  });

  it('blanks every linked identity\u2019s clear address and seals invitations made before 037', async () => {
    // 001..038 as the owner applies them, then the rows a pre-039 deployment holds, written by the
    // owner with RLS lifted as an operator would restore them.
    await owner.script(`create role ${runtimeRole} nologin nosuperuser nobypassrls noinherit`);
    await owner.script('create table public.schema_migrations (version text primary key, applied_at timestamptz not null default now())');
    for (const m of listMigrations()) {
      if (m.version >= SEALED_PEOPLE_MIGRATION) break;
      await owner.transaction(async (tx) => {
        await tx.script(m.text.replaceAll('{{runtime_role}}', runtimeRole));
        await tx.query('insert into public.schema_migrations (version) values ($1)', [m.version]);
      });
    }
    const [user, org, conn, inv] = [newId(), newId(), newId(), newId()];
    await owner.transaction(async (tx) => {
      await tx.script('set local row_security = off; alter table organizations no force row level security; alter table sso_connections no force row level security; alter table sso_identities no force row level security; alter table invitations no force row level security');
      await tx.query(`insert into users (id, email, name) values ($1, 'alice@p39.example', 'Alice P')`, [user]);
      await tx.query(`insert into organizations (org_id, slug, name) values ($1, $2, 'P39')`, [org, `p39-${suffix}`]);
      await tx.query(`insert into sso_connections (org_id, id, kind, name, settings, created_by, created_at, updated_at) values ($1, $2, 'oidc', 'idp', '{}', $3, now(), now())`, [org, conn, user]);
      await tx.query(`insert into sso_identities (org_id, connection_id, issuer, subject, user_id, email, linked_at) values ($1, $2, 'https://idp.p39.example', 'sub-1', $3, 'alice.private@idp.p39.example', now())`, [org, conn, user]);
      await tx.query(`insert into invitations (org_id, id, email, role, token_hash, invited_by, expires_at) values ($1, $2, 'bob.invited@p39.example', 'viewer', $3, $4, now() + interval '1 day')`, [org, inv, `h-${suffix}`, user]);
      await tx.script('alter table organizations force row level security; alter table sso_connections force row level security; alter table sso_identities force row level security; alter table invitations force row level security');
    });

    await migrate(owner, { runtimeRole, runtimePassword: null, login: false, keyedSteps: migrationSteps(testConfig()) });

    const seen = await owner.transaction(async (tx) => {
      await tx.script('alter table sso_identities no force row level security; alter table invitations no force row level security; alter table users no force row level security');
      const out = {
        identities: await tx.query<{ email: string }>('select email from sso_identities'),
        invitations: await tx.query<{ email: string; email_sealed: string | null; email_index: string | null }>('select email, email_sealed, email_index from invitations'),
        users: await tx.query('select * from users'),
      };
      throw Object.assign(new Error('rollback'), { out });
    }).catch((e: { out?: unknown }) => e.out as {
      identities: { email: string }[]; invitations: { email: string; email_sealed: string | null; email_index: string | null }[]; users: unknown[];
    });
    expect(seen.identities).toEqual([{ email: '' }]);
    expect(seen.invitations).toEqual([{ email: '', email_sealed: expect.stringMatching(/^v1\./), email_index: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    expect(JSON.stringify(seen.users)).not.toContain('p39.example');
    // FORCE is back where the migration lifted it (read outside the reading transaction above).
    const forced = await owner.query<{ relname: string; f: boolean }>(
      `select relname, relforcerowsecurity as f from pg_class where relname in ('sso_identities', 'invitations', 'org_keys') order by relname`);
    expect(forced).toEqual([{ relname: 'invitations', f: true }, { relname: 'org_keys', f: true }, { relname: 'sso_identities', f: true }]);
  });
});
