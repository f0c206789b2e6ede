import type { Logger } from 'pino';
import type { Config } from './config/index.js';
import { newId, openKeyring, type Keyring } from './crypto/index.js';
import { catalogProblems } from './db/catalog.js';
import type { Database } from './db/database.js';
import type { MigrateOptions, OwnerConnection } from './db/migrate.js';
import { openDatabase, refuseMissingDatabase, refuseUnmigrated } from './db/open.js';
import { auditMigrationSteps, chainKeysFrom } from './domains/audit/index.js';
import { DEMO_EMAIL_DOMAINS } from './demo.js';
import { ownerStore, sealPeople, SEALED_PEOPLE_MIGRATION } from './domains/identity/seal-people.js';
import { BLIND_INDEX_SCOPE, domainIndexInput } from './domains/keys/sealer.js';

/**
 * Production without SMTP_URL: messages go only to the database outbox. Said at every such
 * start, so that nobody learns it from a user who never got their link.
 */
export const OUTBOX_ONLY_MAIL_WARNING =
  'mail goes only to the database outbox (SMTP_URL is not set): registration verification, ' +
  'password resets and invitations will not reach anyone unless an operator relays them (palisade outbox)';

/** What migrations leave to a process holding the keys: every entry point that migrates passes them. */
export function migrationSteps(config: KeySource, keyring: Keyring = keyringOf(config)): MigrateOptions['keyedSteps'] {
  return {
    ...auditMigrationSteps(chainKeysFrom(keyring)),
    [SEALED_PEOPLE_MIGRATION]: async (tx) => {
      await sealPeople(tx, keyring);
    },
  };
}

/**
 * The keyring of a configuration. With PKCS#11 it holds a token session until the process exits:
 * start-up opens one for migrating and checking, one of the token's many sessions (login is per
 * process, the PIN checked once).
 */
export const keyringOf = (config: KeySource): Keyring => openKeyring({ keks: config.keks, kekProvider: config.kekProvider ?? { kind: 'env' } });

/** Where the KEKs come from; without `kekProvider`, PALISADE_KEKS's material in `keks`. */
export type KeySource = Pick<Config, 'keks'> & Partial<Pick<Config, 'kekProvider'>>;

/** The KEK ids a configuration can unwrap with, the active one first, without opening a token. */
export function configuredKekIds(config: KeySource): string[] {
  return config.kekProvider?.kind === 'pkcs11' ? [...config.kekProvider.keyLabels] : config.keks.map((k) => k.id);
}

/**
 * What every long-running process (serve, worker) checks before it takes traffic. Each problem
 * is one self-explanatory line; any problem refuses the start. Nothing here names a key, only
 * KEK ids (labels from PALISADE_KEKS).
 */
export interface StartupCheck {
  problems: string[];
  /** What could not be checked, for the log. */
  warnings: string[];
}

/**
 * Every wrapped data key must name a KEK of the configured keyring: a key wrapped by a KEK the
 * process lacks makes every sealed value of its org unreadable, and the first request that
 * needs one fails with a 500 (a development database started with production keys did exactly
 * that). Read over the owner connection: org_keys is under FORCE RLS, so only a role that
 * bypasses RLS sees every org's keys. A destroyed key (data-key rotation) has no KEK any more.
 */
async function unknownKekProblems(owner: OwnerConnection, kekIds: readonly string[], setting: string): Promise<StartupCheck> {
  const known = new Set(kekIds);
  const [me] = await owner.query<{ sees_all: boolean }>('select rolsuper or rolbypassrls as sees_all from pg_roles where rolname = current_user');
  const seesAll = me?.sees_all === true;
  const wrapped = await owner.query<{ kek_id: string; n: number }>(
    `select kek_id, count(*)::int as n from (
       select kek_id from system_keys${seesAll ? ' union all select kek_id from org_keys where destroyed_at is null' : ''}
     ) k group by kek_id order by kek_id`,
  );
  const missing = wrapped.filter((w) => !known.has(w.kek_id));
  const problems =
    missing.length === 0
      ? []
      : [
          `data keys in this database are wrapped by KEK ids that ${setting} lacks: ${missing.map((m) => `${m.kek_id} (${m.n} key${m.n === 1 ? '' : 's'})`).join(', ')}; ` +
            `add those KEKs to ${setting} (after the active one), or point PALISADE_DATA_DIR / DATABASE_URL at the database these keys belong to`,
        ];
  // A chain head is checked under its KEK before the org's next event: without that KEK every
  // audited change of the org would fail with a 500, so refuse the start instead.
  if (seesAll) {
    const heads = await owner.query<{ key_id: string; n: number }>(`select key_id, count(*)::int as n from audit_heads where key_id <> '' group by key_id order by key_id`);
    const headless = heads.filter((h) => !known.has(h.key_id));
    if (headless.length > 0) {
      problems.push(
        `audit chain heads in this database are signed under KEK ids that ${setting} lacks: ${headless.map((h) => `${h.key_id} (${h.n} head${h.n === 1 ? '' : 's'})`).join(', ')}; ` +
          `add those KEKs back (after the active one) and run \`palisade keys rotate-kek\`, which re-signs them, before removing a KEK`,
      );
    }
  }
  const warnings = seesAll
    ? []
    : ['the owner role neither is superuser nor has BYPASSRLS: the KEK ids of org data keys (org_keys) and audit chain heads were not checked at start'];
  return { problems, warnings };
}

/**
 * The demo seed's accounts have passwords that development printed and wrote to a file: a
 * production process on such a database would let anyone who saw them sign in.
 */
async function demoAccountProblems(owner: OwnerConnection, keyring: Keyring): Promise<string[]> {
  // Addresses are sealed (migration 039): the demo domains are found by their blind index, which
  // exists only once some account was made (and then opens, or the KEK check above says why not).
  const store = ownerStore(owner);
  if (!(await store.active(BLIND_INDEX_SCOPE))) return [];
  const indexes: string[] = [];
  for (const d of DEMO_EMAIL_DOMAINS) indexes.push(await keyring.blindIndex(store, BLIND_INDEX_SCOPE, domainIndexInput(d), newId));
  const [r] = await owner.query<{ n: number }>(`select count(*)::int as n from users where email_domain_index = any ($1::text[])`, [indexes]);
  if ((r?.n ?? 0) === 0) return [];
  return [
    `this database holds the ${r?.n} demo accounts (@${DEMO_EMAIL_DOMAINS.join(', @')}) whose passwords development printed: ` +
      'production refuses it; use a fresh PALISADE_DATA_DIR or database, never the development one',
  ];
}

export async function startupCheck(
  db: Database, owner: OwnerConnection, config: Pick<Config, 'env'> & KeySource, keyring?: Keyring,
): Promise<StartupCheck> {
  const catalog = (await catalogProblems(db)).map((p) => `isolation check: ${p}`);
  const setting = config.kekProvider?.kind === 'pkcs11' ? 'PALISADE_PKCS11_KEYS' : config.kekProvider?.kind === 'file' ? 'PALISADE_KEK_DIR' : 'PALISADE_KEKS';
  const keys = await unknownKekProblems(owner, configuredKekIds(config), setting);
  // The demo accounts are found by the blind index of their domains, under a key the missing KEK
  // wraps: with a KEK missing, that check waits for the keys (and says so).
  const demo = config.env !== 'production' ? []
    : keys.problems.length === 0 ? await demoAccountProblems(owner, keyring ?? keyringOf(config))
      : ['whether this database holds the demo accounts whose passwords development printed is checked once those KEKs are given (addresses are sealed): a development database is refused then; use a fresh PALISADE_DATA_DIR or database, never the development one'];
  return { problems: [...catalog, ...keys.problems, ...demo], warnings: keys.warnings };
}

export function refusal(problems: readonly string[]): string {
  return `refusing to start:\n - ${problems.join('\n - ')}`;
}

/**
 * How every long-running process (serve, worker) opens its database: migrated first when it is
 * the one that migrates, then checked (startupCheck) over the owner connection, which is closed
 * before any traffic: the process runs on the runtime role alone. Throws the refusal, naming
 * every problem, rather than start.
 */
export async function openCheckedDatabase(
  config: Pick<Config, 'env' | 'database' | 'mail'> & KeySource,
  logger: Pick<Logger, 'warn'>,
  opts: { migrate: boolean },
): Promise<Database> {
  if (!opts.migrate) refuseMissingDatabase(config.database);
  const keyring = keyringOf(config);
  const { db, owner } = await openDatabase(config.database, opts.migrate ? { migrate: true, keyedSteps: migrationSteps(config, keyring) } : { migrate: false });
  let check: StartupCheck;
  try {
    if (!opts.migrate) {
      await refuseUnmigrated(config.database, owner).catch(async (err: unknown) => {
        await db.close();
        throw err;
      });
    }
    check = await startupCheck(db, owner, config, keyring);
  } finally {
    await owner.close();
  }
  if (check.problems.length > 0) {
    await db.close();
    throw new Error(refusal(check.problems));
  }
  for (const w of check.warnings) logger.warn(w);
  if (config.env === 'production' && config.mail.smtp === null) logger.warn(OUTBOX_ONLY_MAIL_WARNING);
  return db;
}
