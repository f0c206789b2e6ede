import { sql } from 'kysely';
import { rows, type Database } from './database.js';

/**
 * SECURITY DEFINER functions the runtime role may call, each doing one thing the role's own
 * privileges must not allow in general, and each refusing unless the transaction is bound to
 * the org it acts in:
 * - palisade_erase_member (migration 035): a data-subject erasure deletes the account of a
 *   person no other org holds (the role deletes no user and no mail, 014, and RLS hides the
 *   other orgs' memberships it must count).
 */
const DEFINERS_ALLOWED = new Set(['palisade_erase_member']);

/**
 * The isolation invariants, read from the live catalog. Run at server start (the server
 * refuses to start on any problem) and by the catalog test.
 */
/**
 * Tables with an org_id that are global by design, each with why: they hold no tenant data,
 * only what a process needs to know before it can bind an org.
 */
export const GLOBAL_TABLES_WITH_ORG_ID: Readonly<Record<string, { columns: readonly string[]; why: string }>> = {
  webhook_due: {
    columns: ['org_id', 'due_at'],
    why: 'which org has webhook deliveries due and when: the worker reads it before it can bind the org',
  },
  audit_stream_orgs: {
    columns: ['org_id', 'check_at'],
    why: 'which orgs stream their audit trail and when the stream worker looks at them next: it reads this before it can bind the org',
  },
  data_key_due: {
    columns: ['org_id', 'due_at'],
    why: 'which org has data-key work due and when (a rotation batch, its final sweep, a key destruction, a scheduled rotation): the worker reads it before it can bind the org',
  },
  export_due: {
    columns: ['org_id', 'due_at'],
    why: 'which org has tenant-export work due and when (an export to write, an archive to delete): the export job reads it before it can bind the org',
  },
  verified_domains: {
    columns: ['domain', 'org_id'],
    why: 'which org proved an email domain: signing in by email address finds the org before it can bind one, and the key keeps a domain to one org',
  },
  sso_enforcement: {
    columns: ['org_id', 'enforced_since', 'break_glass_owners'],
    why: 'which orgs send their verified domains to SSO and who may break glass: every sign-in reads it by the email\'s domain before any org is bound',
  },
  saml_acs_routes: {
    columns: ['connection_id', 'org_id'],
    why: 'which org a SAML connection belongs to: the IdP posts to the ACS URL, which names the connection only, before any org is bound',
  },
};

export async function catalogProblems(db: Database): Promise<string[]> {
  return db.withSystem('catalog check', async (tx) => {
    const problems: string[] = [];
    const role = await rows<{ rolname: string; rolsuper: boolean; rolbypassrls: boolean }>(
      tx,
      sql`select rolname, rolsuper, rolbypassrls from pg_roles where rolname = current_user`,
    );
    const me = role[0];
    if (!me || me.rolname !== db.runtimeRole) problems.push(`queries do not run as the runtime role ${db.runtimeRole}`);
    if (me?.rolsuper) problems.push(`runtime role ${me.rolname} is a superuser`);
    if (me?.rolbypassrls) problems.push(`runtime role ${me.rolname} has BYPASSRLS`);

    const owned = await rows<{ relname: string }>(
      tx,
      sql`select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%'
            and pg_has_role(current_user, c.relowner, 'USAGE')`,
    );
    for (const r of owned) problems.push(`runtime role owns (or inherits the owner of) ${r.relname}`);

    const tenant = await rows<{ relname: string; rls: boolean; forced: boolean; kind: string }>(
      tx,
      sql`select c.relname, c.relrowsecurity as rls, c.relforcerowsecurity as forced, c.relkind as kind
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
          join pg_attribute a on a.attrelid = c.oid and a.attname = 'org_id' and not a.attisdropped
          where n.nspname = 'public' and c.relkind in ('r', 'p')`,
    );
    for (const t of tenant) {
      const global = Object.prototype.hasOwnProperty.call(GLOBAL_TABLES_WITH_ORG_ID, t.relname) ? GLOBAL_TABLES_WITH_ORG_ID[t.relname] : undefined;
      if (global) {
        // Exempt from RLS only while it holds nothing but what it is documented to hold.
        const cols = await rows<{ attname: string }>(
          tx,
          sql`select a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
              where n.nspname = 'public' and c.relname = ${t.relname} and a.attnum > 0 and not a.attisdropped order by a.attnum`,
        );
        const extra = cols.map((c) => c.attname).filter((c) => !global.columns.includes(c));
        if (extra.length > 0) problems.push(`${t.relname}: global by design, but holds more than ${global.columns.join(', ')}: ${extra.join(', ')}`);
        continue;
      }
      if (!t.rls) problems.push(`${t.relname}: row-level security is not enabled`);
      if (!t.forced) problems.push(`${t.relname}: row-level security is not forced`);
      const policies = await rows<{ n: number }>(
        tx,
        sql`select count(*)::int as n from pg_policy p join pg_class c on c.oid = p.polrelid
            join pg_namespace ns on ns.oid = c.relnamespace
            where ns.nspname = 'public' and c.relname = ${t.relname} and p.polpermissive and p.polcmd = '*'
              and p.polqual is not null and p.polwithcheck is not null
              and pg_get_expr(p.polqual, p.polrelid) like '%palisade.org_id%'
              and pg_get_expr(p.polwithcheck, p.polrelid) like '%palisade.org_id%'`,
      );
      if ((policies[0]?.n ?? 0) === 0) problems.push(`${t.relname}: no tenant policy with USING and WITH CHECK on org_id`);
    }

    const definers = await rows<{ proname: string; nspname: string }>(
      tx,
      sql`select p.proname, n.nspname from pg_proc p join pg_namespace n on n.oid = p.pronamespace
          where p.prosecdef and n.nspname not in ('pg_catalog', 'information_schema')
            and has_function_privilege(current_user, p.oid, 'EXECUTE')
            and has_schema_privilege(current_user, n.oid, 'USAGE')`,
    );
    for (const d of definers) {
      if (!(d.nspname === 'public' && DEFINERS_ALLOWED.has(d.proname))) problems.push(`SECURITY DEFINER function ${d.nspname}.${d.proname} is executable by the runtime role`);
    }

    const views = await rows<{ relname: string }>(
      tx,
      sql`select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
          where n.nspname = 'public' and c.relkind in ('v', 'm')
            and not coalesce(c.reloptions @> array['security_invoker=true'] or c.reloptions @> array['security_invoker=on'], false)`,
    );
    for (const v of views) problems.push(`view ${v.relname} lacks security_invoker`);

    // Privileges no code path uses and that undo the guarantees above, whoever granted them:
    // TRUNCATE ignores RLS; REFERENCES and TRIGGER act on other tenants' rows; the audit trail is
    // append-only; CREATE or TEMP can shadow a table for later queries on a pooled connection.
    // (test/isolation/runtime-grants.test.ts holds the full list of what the role may hold.)
    const excess = await rows<{ what: string }>(
      tx,
      sql`select p.priv || ' on ' || c.relname as what
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
          cross join unnest(array['TRUNCATE', 'REFERENCES', 'TRIGGER', 'UPDATE', 'DELETE']) as p(priv)
          where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' and c.relkind in ('r', 'p')
            and (p.priv in ('TRUNCATE', 'REFERENCES', 'TRIGGER') or c.relname = 'audit_events' or (c.relname = 'audit_heads' and p.priv = 'DELETE'))
            and has_table_privilege(current_user, c.oid, p.priv)
          union all
          select 'CREATE in schema ' || n.nspname from pg_namespace n
          where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg_toast%' and n.nspname not like 'pg_temp%'
            and has_schema_privilege(current_user, n.oid, 'CREATE')
          union all
          select 'TEMPORARY on the database' where has_database_privilege(current_user, current_database(), 'TEMPORARY')
          order by 1`,
    );
    for (const e of excess) problems.push(`runtime role holds ${e.what}, which no code path needs`);
    return problems;
  });
}
