import type { TestApp } from './app.js';

/**
 * The tables of the public schema holding `value` anywhere in a row (case-insensitive), also
 * escaped inside a text column that holds JSON (a webhook payload), read as the owner of the
 * database: what someone with a copy of the database, and no key, reads.
 */
export async function tablesHolding(h: TestApp, value: string): Promise<string[]> {
  const tables = await h.t.owner.query<{ name: string }>(
    `select c.relname as name from pg_class c join pg_namespace n on n.oid = c.relnamespace
     where n.nspname = 'public' and c.relkind in ('r', 'p') order by 1`,
  );
  const escaped = JSON.stringify(value).slice(1, -1);
  const found: string[] = [];
  for (const { name } of tables) {
    const [hit] = await h.t.owner.query<{ n: number }>(
      `select count(*)::int as n from "${name}" t where strpos(lower(row_to_json(t)::text), lower($1)) > 0 or strpos(lower(row_to_json(t)::text), lower($2)) > 0`,
      [value, JSON.stringify(escaped).slice(1, -1)],
    );
    if ((hit?.n ?? 0) > 0) found.push(name);
  }
  return found;
}
