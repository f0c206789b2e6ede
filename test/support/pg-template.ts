import pg from 'pg';
import { openDatabase } from '../../src/db/open.js';

/**
 * The migrated PostgreSQL database each test database is copied from (CREATE DATABASE …
 * TEMPLATE, about 0.1 s) rather than migrated anew (about 0.35 s). One per test run: the first
 * worker that needs it migrates it (so every run still applies every migration to PostgreSQL),
 * the run's global teardown drops it (pg-global-setup.ts), and a run that died before its
 * teardown leaves one the next run's setup drops once it is old.
 */
const PREFIX = 'palisade_tpl_';
const COMMENT = 'palisade test template, built at ';
/** Older than any run (CI's budget is 90 minutes): a template left by a run that died. */
const ORPHAN_AFTER_MS = 3 * 60 * 60 * 1000;

export function templateName(): string {
  // PALISADE_TEST_RUN is set by the run's global setup; a process outside one has its own.
  const run = (process.env.PALISADE_TEST_RUN ?? `p${process.pid}`).replace(/[^a-z0-9]/g, '');
  return `${PREFIX}${run}`;
}

let built: Promise<string> | null = null;

/** Built under a name of its own and renamed when complete: nothing copies a half-migrated one. */
export function migratedPostgres(adminUrl: string, urlFor: (db: string, user?: string) => string, runtimeRole: string): Promise<string> {
  built ??= (async () => {
    const name = templateName();
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      // Workers starting together build it once: the others wait here, then find it.
      await admin.query('select pg_advisory_lock(727275)');
      const found = await admin.query('select 1 from pg_database where datname = $1', [name]);
      if (found.rowCount === 0) {
        const building = `${name}_building`;
        await admin.query(`drop database if exists ${building} with (force)`);
        await admin.query(`create database ${building}`);
        // Dated from the start (the comment stays through the rename): another run's setup must
        // see a template still being built as young, not as an orphan of unknown age to drop.
        await admin.query(`comment on database ${building} is '${COMMENT}${Date.now()}'`);
        const opened = await openDatabase(
          { kind: 'postgres', ownerUrl: urlFor(building), runtimeUrl: urlFor(building, runtimeRole), runtimeRole, runtimePassword: null, poolSize: 1 },
          { migrate: true },
        );
        await opened.db.close();
        await opened.owner.close();
        await admin.query(`alter database ${building} rename to ${name}`);
        // A stray session on a template (a psql, an IDE) would make every copy fail after 5 s.
        await admin.query(`alter database ${name} with is_template true allow_connections false`);
      }
      return name;
    } finally {
      await admin.query('select pg_advisory_unlock(727275)').catch(() => undefined);
      await admin.end();
    }
  })();
  return built;
}

/**
 * CREATE DATABASE … TEMPLATE copies the template's contents but not what is kept about the
 * database itself in the shared catalog: its privileges (migration 014 revokes TEMPORARY from
 * PUBLIC there) would be the defaults again, with no migration left to set them. The copy is
 * granted exactly the template's, by GRANT (so PostgreSQL records who depends on them).
 */
export async function copyDatabaseAcl(admin: pg.Client, template: string, name: string): Promise<void> {
  const acl = await admin.query<{ privilege_type: string; is_grantable: boolean; grantee: string; owner: string }>(
    `select a.privilege_type, a.is_grantable,
            case when a.grantee = 0 then 'public' else quote_ident(r.rolname) end as grantee,
            quote_ident(pg_get_userbyid(d.datdba)) as owner
       from pg_database d cross join lateral aclexplode(d.datacl) a left join pg_roles r on r.oid = a.grantee
      where d.datname = $1`,
    [template],
  );
  const first = acl.rows[0];
  if (!first) return; // The defaults: what the copy already has.
  await admin.query(`revoke all on database ${name} from public, ${first.owner}`);
  for (const g of acl.rows) {
    await admin.query(`grant ${g.privilege_type} on database ${name} to ${g.grantee}${g.is_grantable ? ' with grant option' : ''}`);
  }
}

/** Drops this run's template, or (`orphans`) other runs' once they are older than any run. */
export async function dropTemplates(adminUrl: string, which: 'this run' | 'orphans'): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const all = await admin.query<{ datname: string; note: string | null }>(
      `select datname, shobj_description(oid, 'pg_database') as note from pg_database where starts_with(datname, $1)`,
      [PREFIX],
    );
    const mine = templateName();
    for (const { datname, note } of all.rows) {
      const builtAt = note?.startsWith(COMMENT) ? Number(note.slice(COMMENT.length)) : 0;
      const drop = which === 'this run' ? datname === mine || datname === `${mine}_building` : datname !== mine && Date.now() - builtAt > ORPHAN_AFTER_MS;
      if (!drop || !/^[a-z0-9_]+$/.test(datname)) continue;
      await admin.query(`alter database ${datname} with is_template false`).catch(() => undefined);
      await admin.query(`drop database if exists ${datname} with (force)`).catch(() => undefined);
    }
  } finally {
    await admin.end();
  }
}
