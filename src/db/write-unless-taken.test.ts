import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'kysely';
import { ENGINES, createTestDatabase, type TestDatabase } from '../../test/support/db.js';
import { newId } from '../crypto/index.js';
import { SYSTEM_ORG_ID } from '../kernel/ids.js';
import { one, writeUnlessTaken } from './database.js';

describe.each(ENGINES)('writeUnlessTaken (%s)', (engine) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase(engine);
  });
  afterAll(() => t.drop());

  // An account as the database holds it (migration 039): sealed values and the unique blind index of the address.
  const insertUser = (id: string, emailIndex: string) =>
    sql`insert into users (id, email_sealed, name_sealed, email_index, password_hash, password_changed_at) values (${id}, 'sealed', 'sealed', ${emailIndex}, 'h', now())`;

  it('undoes only the taken write: the transaction goes on and commits the rest', async () => {
    const email = `taken-index-${newId()}`;
    const [first, second, third] = [newId(), newId(), newId()];
    const outcome = await t.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => [
      await writeUnlessTaken(tx, insertUser(first, email)),
      await writeUnlessTaken(tx, insertUser(second, email)),
      await writeUnlessTaken(tx, insertUser(third, `other-${email}`)),
    ]);
    expect(outcome).toEqual([true, false, true]);
    const count = await t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
      one<{ n: number }>(tx, sql`select count(*)::int as n from users where id in (${first}, ${second}, ${third})`),
    );
    expect(count?.n).toBe(2);
  });

  it('throws every error that is not a unique violation', async () => {
    await expect(
      t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => writeUnlessTaken(tx, sql`insert into users (id, email_sealed, name_sealed, email_index) values (${newId()}, 'sealed', 'sealed', null)`)),
    ).rejects.toMatchObject({ code: '23502' });
  });
});
