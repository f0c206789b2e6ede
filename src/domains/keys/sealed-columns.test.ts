import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../../test/support/db.js';
import { columnName, SEALED_COLUMNS } from './sealed-columns.js';

/**
 * The rotation re-encrypts what the registry lists; a sealed column it does not list would stay
 * under a retired key and become unreadable when that key is destroyed. So every `*_sealed`
 * column of the migrated schema must be in the registry, and every registry line must exist.
 */
describe('the registry of sealed columns', () => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await createTestDatabase('pglite');
  });
  afterAll(async () => t?.drop());

  it('knows every *_sealed column of the schema, and names no column that does not exist', async () => {
    const cols = await t.owner.query<{ name: string }>(
      `select table_name || '.' || column_name as name from information_schema.columns
       where table_schema = 'public' and column_name like '%\\_sealed' order by 1`,
    );
    const known = SEALED_COLUMNS.map(columnName).sort();
    expect(cols.map((c) => c.name).filter((c) => !known.includes(c)), 'sealed columns missing from SEALED_COLUMNS').toEqual([]);
    expect(known.filter((c) => !cols.some((x) => x.name === c)), 'registry lines naming no column').toEqual([]);
  });

  it('gives every org-scoped column an org_id and a uuid row key (the job walks them in that order)', async () => {
    for (const c of SEALED_COLUMNS.filter((x) => x.scope === 'org')) {
      const types = await t.owner.query<{ column_name: string; data_type: string }>(
        `select column_name, data_type from information_schema.columns where table_schema = 'public' and table_name = $1 and column_name in ('org_id', $2)`,
        [c.table, c.row],
      );
      expect(Object.fromEntries(types.map((x) => [x.column_name, x.data_type])), columnName(c)).toEqual({ org_id: 'uuid', [c.row]: 'uuid' });
    }
  });
});
