import { sql } from 'kysely';
import { rows, type Tx } from '../../db/database.js';

/**
 * What a tenant export holds: every table with an org_id under row-level security, read from the
 * live catalog (a new tenant table is exported without anyone remembering to add it), except
 * what is listed here with its reason. A column whose name says it holds a secret (a hash, a
 * sealed value, key material, a MAC) must be listed too, or the plan refuses to run: a new
 * secret column stops exports until someone decides about it, it never leaves by default.
 * The reasons are written into every archive's manifest.
 */
export const EXCLUDED_TABLES: Readonly<Record<string, string>> = {
  org_keys: 'the org\u2019s data keys, wrapped by the deployment\u2019s KEKs: key material is never exported, sealed or not',
  org_exports: 'the export job\u2019s own bookkeeping (each archive\u2019s key, sealed with the org key)',
  org_export_parts: 'the export job\u2019s own bookkeeping (what each manifest lists)',
  org_export_links: 'download links: SHA-256 hashes of their tokens',
  files_gone: 'the files service\u2019s own bookkeeping: stored bytes of deleted files still to be removed',
};

const SEALED_SECRET = 'a secret sealed with the org\u2019s data key: write-only, never exported in clear or sealed';

export const EXCLUDED_COLUMNS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  api_keys: { token_hash: 'the SHA-256 of each API key\u2019s secret (the metadata is exported)' },
  invitations: {
    token_hash: 'the SHA-256 of each invitation\u2019s token',
    email_sealed: 'opened into each invitation\u2019s `email_opened` field (the invited address); the sealed form needs the org\u2019s key',
    email_index: 'a keyed blind index (HMAC) of the address under this deployment\u2019s key: meaningless outside it',
  },
  audit_events: {
    personal_sealed: 'opened into each event\u2019s `personal` field (details, client address, user agent); the sealed form needs the org\u2019s key',
  },
  files: { key_sealed: 'each file\u2019s own key, sealed with the org\u2019s data key: key material is never exported (the files\u2019 metadata is; their bytes are not in the archive)' },
  audit_heads: { mac: 'the chain head\u2019s MAC under the deployment\u2019s chain key (the head\u2019s hash is exported)' },
  audit_streams: { secret_sealed: SEALED_SECRET, previous_secret_sealed: SEALED_SECRET, auth_header_sealed: SEALED_SECRET },
  inbound_sources: { secret_sealed: SEALED_SECRET },
  integration_credentials: { secret_sealed: SEALED_SECRET },
  sso_connections: { secret_sealed: SEALED_SECRET },
  sso_identities: {
    email_sealed: 'opened into each linked identity’s `email_opened` field (what the IdP asserted); the sealed form needs the org’s key',
  },
  sso_tests: { result_sealed: 'a single sign-on test run\u2019s sealed result (the IdP\u2019s claims), kept briefly for the admin who ran it' },
  webhook_endpoints: { secret_sealed: SEALED_SECRET, previous_secret_sealed: SEALED_SECRET },
};

/**
 * Sealed columns holding the org's own data (not a secret of it): opened with the org's key and
 * written in clear under another name beside the row. Each is also in EXCLUDED_COLUMNS, so its
 * sealed form never leaves. The AAD row is the table's `id`.
 */
export const OPENED_COLUMNS: Readonly<Record<string, { column: string; as: string }>> = {
  invitations: { column: 'email_sealed', as: 'email_opened' },
  sso_identities: { column: 'email_sealed', as: 'email_opened' },
};

/** Names that announce a secret: such a column must be excluded above, with its reason, or cleared below. */
export const SECRET_COLUMN = /(_hash$|_sealed$|^wrapped$|^mac$|secret|password|token)/;

/** Columns whose name looks like a secret but which hold none, each with why (exported). */
export const NOT_SECRETS: Readonly<Record<string, string>> = {
  'audit_events.prev_hash': 'the previous event\u2019s chain hash: the chain is verifiable without a key by design',
  'audit_streams.previous_secret_expires_at': 'a time (when the replaced signing secret stops being accepted)',
  'webhook_endpoints.previous_secret_expires_at': 'a time (when the replaced signing secret stops being accepted)',
};

export interface TablePlan {
  name: string;
  /** Columns written (all but the excluded ones). */
  columns: string[];
  excluded: string[];
  /** Primary key columns and their SQL types: the order rows are read in, and the resume point. */
  key: { column: string; type: string }[];
  /** A table the export started with that no longer exists (read as empty). */
  gone?: true;
}

/** The tenant tables as the catalog has them. */
export async function tenantTables(tx: Tx): Promise<{ name: string; columns: string[]; key: { column: string; type: string }[] }[]> {
  const list = await rows<{ name: string; columns: string; key: string | null }>(
    tx,
    sql`select c.relname::text as name,
          array_to_json(array(select a.attname::text from pg_attribute a where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped order by a.attnum))::text as columns,
          (select array_to_json(array(
             select json_build_object('column', a.attname::text, 'type', format_type(a.atttypid, a.atttypmod))
             from unnest(i.indkey) with ordinality k(n, o) join pg_attribute a on a.attrelid = c.oid and a.attnum = k.n order by k.o))::text
           from pg_index i where i.indrelid = c.oid and i.indisprimary) as key
        from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relrowsecurity
          and exists (select 1 from pg_attribute a where a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped)
        order by c.relname`,
  );
  return list.map((t) => ({ name: t.name, columns: JSON.parse(t.columns) as string[], key: t.key ? (JSON.parse(t.key) as { column: string; type: string }[]) : [] }));
}

/** Why a catalog's tenant tables cannot be exported as the policy stands (empty: they can). */
export function planProblems(tables: Awaited<ReturnType<typeof tenantTables>>): string[] {
  const problems: string[] = [];
  const names = new Set(tables.map((t) => t.name));
  for (const t of Object.keys(EXCLUDED_TABLES)) if (!names.has(t)) problems.push(`excluded table ${t} is not a tenant table (stale entry)`);
  for (const [t, cols] of Object.entries(EXCLUDED_COLUMNS)) {
    const table = tables.find((x) => x.name === t);
    if (!table) problems.push(`excluded columns of ${t}, which is not a tenant table (stale entry)`);
    else for (const c of Object.keys(cols)) if (!table.columns.includes(c)) problems.push(`excluded column ${t}.${c} does not exist (stale entry)`);
  }
  for (const [t, o] of Object.entries(OPENED_COLUMNS)) {
    if (!EXCLUDED_COLUMNS[t]?.[o.column]) problems.push(`opened column ${t}.${o.column} must also be excluded (its sealed form never leaves)`);
  }
  for (const name of Object.keys(NOT_SECRETS)) {
    const [table, column] = name.split('.');
    if (!tables.some((t) => t.name === table && t.columns.includes(column ?? ''))) problems.push(`${name} is declared harmless but does not exist (stale entry)`);
  }
  for (const t of tables) {
    if (EXCLUDED_TABLES[t.name]) continue;
    if (t.key.length === 0) problems.push(`${t.name} has no primary key to read it in batches by`);
    for (const c of t.columns) {
      if (SECRET_COLUMN.test(c) && !EXCLUDED_COLUMNS[t.name]?.[c] && !NOT_SECRETS[`${t.name}.${c}`]) problems.push(`${t.name}.${c} looks like a secret: exclude it in exports/policy.ts (with a reason) or rename it`);
    }
    for (const k of t.key) if (EXCLUDED_COLUMNS[t.name]?.[k.column]) problems.push(`${t.name}: key column ${k.column} is excluded`);
  }
  return problems;
}

/** The tables an export writes, in a fixed order (by name), or throws naming every problem. */
export function planOf(tables: Awaited<ReturnType<typeof tenantTables>>): TablePlan[] {
  const problems = planProblems(tables);
  if (problems.length > 0) throw new Error(`tenant export plan: ${problems.join('; ')}`);
  return tables
    .filter((t) => !EXCLUDED_TABLES[t.name])
    .map((t) => {
      const excluded = Object.keys(EXCLUDED_COLUMNS[t.name] ?? {});
      return { name: t.name, columns: t.columns.filter((c) => !excluded.includes(c)), excluded, key: t.key };
    });
}
