import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../test/support/db.js';
import { SYSTEM_ORG_ID } from '../kernel/ids.js';
import { asPgliteParameter } from './pglite-dialect.js';

/**
 * review 2026-12-05 F1: a parameter PGlite's serializer could not write (a number or a Date where
 * an array goes, an object where text goes) threw halfway through a message and left the embedded
 * engine's one connection broken for every later query. Sent as text, each is an input error.
 */
describe('parameters on the embedded engine', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('pglite');
  });
  afterAll(async () => t?.drop());

  it('turns every misfit into a PostgreSQL input error and keeps the connection usable', async () => {
    const misfits: [string, unknown][] = [
      ['a number as text[]', 5], ['a Date as int[]', new Date()], ['an object as text[]', { a: 1 }], ['a boolean as uuid[]', true],
    ];
    for (const [what, value] of misfits) {
      const type = what.endsWith('int[]') ? sql`int[]` : what.endsWith('uuid[]') ? sql`uuid[]` : sql`text[]`;
      const err = await t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => sql`select ${value}::${type} as v`.execute(tx)).then(() => null, (e: unknown) => e);
      expect((err as { code?: string } | null)?.code, what).toMatch(/^22/);
      const ok = await t.db.withSystem('after a misfit', (tx) => sql<{ one: number }>`select 1 as one`.execute(tx));
      expect(ok.rows, what).toEqual([{ one: 1 }]);
    }
  });

  it('sends values in the forms node-postgres would', () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    expect(asPgliteParameter(at)).toBe('2026-01-02T03:04:05.678Z');
    expect(asPgliteParameter([1, 'a', null, [true]])).toEqual(['1', 'a', null, ['true']]);
    expect(asPgliteParameter({ a: [1] })).toBe('{"a":[1]}');
    expect(asPgliteParameter(10n)).toBe('10');
    const bytes = Buffer.from('hi');
    expect(asPgliteParameter(bytes)).toBe(bytes);
    expect(asPgliteParameter(undefined)).toBeNull();
  });
});
