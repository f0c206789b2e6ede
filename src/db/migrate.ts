import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What migrations need from an owner connection: multi-statement scripts and parameterised queries. */
export interface OwnerConnection {
  script(text: string): Promise<void>;
  query<R>(text: string, params?: unknown[]): Promise<R[]>;
  /** Runs `fn` in one transaction on one connection; rolls back if it throws. */
  transaction<T>(fn: (tx: OwnerConnection) => Promise<T>): Promise<T>;
}

const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), 'migrations');

export function listMigrations(): { version: string; text: string }[] {
  return readdirSync(MIGRATIONS_DIR)
    .filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f))
    .sort()
    .map((f) => ({ version: f.replace(/\.sql$/, ''), text: readFileSync(join(MIGRATIONS_DIR, f), 'utf8') }));
}

function quoteLiteral(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/**
 * Roles are cluster-wide: two databases migrating at once (parallel test files, two
 * instances of different apps) can race on the same catalog row. Retry those statements.
 */
async function roleDdl(owner: OwnerConnection, text: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await owner.script(text);
      return;
    } catch (err) {
      const msg = String((err as Error).message);
      if (attempt < 5 && /tuple concurrently updated|already exists|concurrently/.test(msg)) {
        if (/already exists/.test(msg)) return;
        await new Promise((r) => setTimeout(r, 20 * (attempt + 1)));
        continue;
      }
      throw err;
    }
  }
}

export interface MigrateOptions {
  runtimeRole: string;
  /** Null on the embedded engine, where the runtime role is entered with SET ROLE, not a login. */
  runtimePassword: string | null;
  login: boolean;
  /**
   * Work a migration leaves to a process that holds the keys (SQL has none), by migration
   * version: run after that migration's SQL, in its transaction, so that the migration is applied
   * with it or not at all. The migration's SQL sees `palisade.keyed_steps = 'on'` when it is given.
   */
  keyedSteps?: Readonly<Record<string, (tx: OwnerConnection) => Promise<void>>> | undefined;
}

/**
 * Runs as the owner. Creates the runtime role (no superuser, no BYPASSRLS, owns nothing),
 * then applies the numbered migrations not yet applied, each in its own transaction,
 * under an advisory lock so that two instances starting at once do not race.
 */
export async function migrate(owner: OwnerConnection, opts: MigrateOptions): Promise<string[]> {
  const role = opts.runtimeRole;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(role)) throw new Error('bad runtime role name');
  await owner.query(`select pg_advisory_lock(727274)`);
  try {
    const existing = await owner.query<{ rolname: string }>(`select rolname from pg_roles where rolname = $1`, [role]);
    if (existing.length === 0) {
      await roleDdl(owner, `create role ${role} ${opts.login ? 'login' : 'nologin'} nosuperuser nobypassrls nocreatedb nocreaterole noinherit`);
    }
    if (opts.runtimePassword) await roleDdl(owner, `alter role ${role} password ${quoteLiteral(opts.runtimePassword)}`);
    const timeout = await owner.query<{ n: number }>(
      `select count(*)::int as n from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
       where r.rolname = $1 and s.setdatabase = 0 and 'statement_timeout=15s' = any(s.setconfig)`,
      [role],
    );
    if ((timeout[0]?.n ?? 0) === 0) await roleDdl(owner, `alter role ${role} set statement_timeout = '15s'`);
    await owner.script(
      `create table if not exists public.schema_migrations (version text primary key, applied_at timestamptz not null default now())`,
    );
    await owner.script(`revoke all on public.schema_migrations from public`);
    const done = new Set((await owner.query<{ version: string }>(`select version from public.schema_migrations`)).map((r) => r.version));
    const applied: string[] = [];
    for (const m of listMigrations()) {
      if (done.has(m.version)) continue;
      const text = m.text.replaceAll('{{runtime_role}}', role);
      const step = opts.keyedSteps?.[m.version];
      // One connection, one transaction: a failed migration is rolled back on the connection
      // that ran it, and a keyed step commits with its migration or not at all.
      await owner.transaction(async (tx) => {
        if (step) await tx.query(`select set_config('palisade.keyed_steps', 'on', true)`);
        await tx.script(text);
        await step?.(tx);
        await tx.query(`insert into public.schema_migrations (version) values ($1)`, [m.version]);
      });
      applied.push(m.version);
    }
    return applied;
  } finally {
    await owner.query(`select pg_advisory_unlock(727274)`);
  }
}
