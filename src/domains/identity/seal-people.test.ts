import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, testConfig, type TestApp } from '../../../test/support/app.js';
import { ENGINES } from '../../../test/support/db.js';
import { newId } from '../../crypto/index.js';
import { migrate } from '../../db/migrate.js';
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
