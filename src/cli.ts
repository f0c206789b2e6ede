import { writeFileSync } from 'node:fs';
import { sql } from 'kysely';
import { ConfigError, loadConfig, type Config } from './config/index.js';
import { one, type Database } from './db/database.js';
import type { OwnerConnection } from './db/migrate.js';
import type { Query } from './domains/audit/index.js';
import { userWithEmail } from './domains/identity/people.js';
import { systemClock } from './kernel/clock.js';
import { systemContext } from './kernel/context.js';
import { SYSTEM_ORG_ID } from './kernel/ids.js';
import { createLogger } from './logging.js';
import type { Services } from './services.js';

const USAGE = `usage: palisade <command>
  serve                       start the server (same as npm start): the API and the background jobs
  migrate                     apply database migrations as the owner role
  demo --json FILE            seed the demo orgs (acme, globex) and write their logins to FILE
  audit verify [--org SLUG|ID] [--checkpoints FILE]
                              verify the audit chains and compare them with their latest checkpoints;
                              exit 1 naming each broken event, cut or missing chain, or forged checkpoint
  audit checkpoint            verify, then append each sound chain's head to the checkpoint file
  outbox [--to EMAIL]         print the mail outbox: verification and reset links, invitations, and
                              security notices (account locked, sign-in method added, someone
                              registering with your address)
  unlock EMAIL                lift an account lockout now (audited as the operator)
  allowlist clear --org SLUG  empty an org's admin IP allowlist (break-glass; audited as the operator)
  plan --org SLUG PLAN        move an org to a plan of PALISADE_UPLOAD_PLANS (its upload limits;
                              audited as the operator)
  keys status                 per KEK: the data keys it wraps and the audit events it authenticates;
                              which configured KEKs can be removed, and which missing ones are needed
  keys rotate-kek [--batch N] [--new-kek ID]
                              rewrap every data key and re-sign every chain head under the active
                              (first) KEK, N orgs per transaction (default 200); resumable; refuses to
                              start, changing nothing, when a stored key's KEK is missing or does not
                              open it, or nothing shows the servers hold the active KEK (--new-kek ID:
                              this run is its first use)
  keys create-kek LABEL       make a KEK (and LABEL.mac) inside the PKCS#11 token (PALISADE_KEK_PROVIDER=pkcs11)
  worker                      run the background jobs without the API: webhook and mail delivery
                              (mail with SMTP_URL), audit streams, data-key rotation and audit checkpoints
                              (PostgreSQL; serve runs them too)
  keys rotate-data-key --org SLUG
                              rotate an org's data key and re-encrypt its sealed values, with progress
                              (audited as the operator; the final sweep is left to serve or worker)
  keys rollback-data-key --org SLUG
                              make the org's most recently retired data key active again (within its
                              rollback window) and re-encrypt back under it
  keys rotation-status [--org SLUG]
                              each org's active key, rotation progress and retired keys
  export verify ARCHIVE --keys KEYS.json
                              check a downloaded tenant export offline: its manifest's signature
                              against the published keys (GET /.well-known/palisade-export-keys, saved),
                              each file's SHA-256, size and rows; exit 1 naming each problem`;

// Each command imports what it needs when it runs (`serve` Fastify, `worker` the jobs, the rest
// the services): a usage error or `--help` answers without loading the whole server.

/**
 * An operator command's database and services: the same keyring, sealer and audit writer as the
 * server's (createServices), so what the CLI appends or reads is what the server would. Its
 * log goes to stderr, away from the command's output.
 */
async function withServices<T>(
  config: Config,
  opts: { migrate: boolean },
  fn: (s: Services, db: Database, owner: OwnerConnection) => Promise<T>,
): Promise<T> {
  const { openDatabase, refuseMissingDatabase, refuseUnmigrated } = await import('./db/open.js');
  const { migrationSteps } = await import('./startup.js');
  if (!opts.migrate) refuseMissingDatabase(config.database);
  const { db, owner } = await openDatabase(config.database, opts.migrate ? { migrate: true, keyedSteps: migrationSteps(config) } : { migrate: false });
  if (!opts.migrate) {
    await refuseUnmigrated(config.database, owner).catch(async (err: unknown) => {
      await db.close();
      await owner.close();
      throw err;
    });
  }
  const { createServices } = await import('./services.js');
  const services = createServices(config, db, systemClock, createLogger(config.logLevel, process.stderr));
  try {
    return await fn(services, db, owner);
  } finally {
    await services.close();
    await db.close();
    await owner.close();
  }
}

const COMMANDS = new Set(['serve', 'migrate', 'demo', 'audit', 'outbox', 'unlock', 'allowlist', 'plan', 'keys', 'worker', 'export']);

/** The org by slug over the owner connection, as `audit verify` finds it (nothing is bound yet); says so when there is none. */
async function orgBySlug(owner: { query<R>(text: string, params?: unknown[]): Promise<R[]> }, slug: string): Promise<{ org_id: string } | null> {
  const [org] = await owner.query<{ org_id: string }>('select org_id from organizations where slug = $1', [slug]);
  if (!org) process.stderr.write(`no organization ${slug}\n`);
  return org ?? null;
}

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

export async function runCli(argv: string[]): Promise<number> {
  const [cmd, sub, ...rest] = argv;
  if (cmd === '--help' || cmd === '-h' || cmd === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  // Before the configuration is read: a typo is answered as a typo, even where the config is refused.
  if (cmd === undefined || !COMMANDS.has(cmd)) {
    process.stderr.write(`${cmd === undefined ? 'no command given' : `unknown command: ${cmd}`}\n${USAGE}\n`);
    return 2;
  }
  // Offline: a recipient verifies an archive with no database and no configuration of ours.
  if (cmd === 'export') {
    const keys = flag(rest, '--keys');
    if (sub !== 'verify' || !rest[0] || rest[0].startsWith('--') || !keys) {
      process.stderr.write(`export verify needs ARCHIVE and --keys KEYS.json\n${USAGE}\n`);
      return 2;
    }
    const { exportVerifyCommand } = await import('./domains/exports/verify-command.js');
    return exportVerifyCommand(rest[0], keys, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
  }
  const config = loadConfig();
  // What a known command lacks, said before the usage.
  let missing = '';
  switch (cmd) {
    case 'serve': {
      // Loaded only here: the other commands, `worker` among them, never load Fastify.
      const { serveUntilSignal } = await import('./main.js');
      return serveUntilSignal(config);
    }
    case 'migrate': {
      const { openDatabase } = await import('./db/open.js');
      const { migrationSteps } = await import('./startup.js');
      const { db, owner } = await openDatabase(config.database, { migrate: true, keyedSteps: migrationSteps(config) });
      await db.close();
      await owner.close();
      process.stdout.write('migrations applied\n');
      return 0;
    }
    case 'demo': {
      const file = flag([sub ?? '', ...rest], '--json');
      if (!file) throw new ConfigError('demo needs --json FILE');
      // Known accounts with passwords in a file: production refuses them at start, so never seeds them.
      if (config.env === 'production') {
        process.stderr.write('palisade demo is for development and test databases: production refuses the demo accounts\n');
        return 2;
      }
      const { hasAnyUser, seedDemo } = await import('./demo.js');
      return withServices(config, { migrate: true }, async (services, db) => {
        if (await hasAnyUser(db)) {
          process.stderr.write('this database already has users: demo seeds an empty database only\n');
          return 2;
        }
        const data = await seedDemo(db, services);
        writeFileSync(file, JSON.stringify(data, null, 2), { mode: 0o600 });
        process.stdout.write(`seeded ${data.orgs.map((o) => o.slug).join(', ')}; logins written to ${file}\n`);
        return 0;
      });
    }
    case 'audit': {
      if (sub !== 'verify' && sub !== 'checkpoint') break;
      const { auditCheckpoint, auditVerify } = await import('./domains/audit/index.js');
      return withServices(config, { migrate: false }, async ({ chainKeys }, _db, owner) => {
        // Operator tool: reads every org's chain over the owner connection (needs a role that
        // bypasses RLS, e.g. the migration owner when it is superuser or BYPASSRLS).
        const query: Query = (text, params) => owner.query(text, params);
        const opts = {
          org: flag(rest, '--org'), checkpointFile: flag(rest, '--checkpoints') ?? config.auditCheckpoints.file,
          progress: (line: string) => process.stderr.write(`${line}\n`),
        };
        const outcome = sub === 'verify' ? await auditVerify(query, chainKeys, opts) : await auditCheckpoint(query, chainKeys, systemClock, opts);
        process.stdout.write(outcome.out);
        process.stderr.write(outcome.err);
        return outcome.code;
      });
    }
    case 'outbox': {
      const args = [sub, ...rest].filter((a): a is string => a !== undefined);
      const to = flag(args, '--to');
      if (args.length > 0 && (args.length !== 2 || args[0] !== '--to' || !to)) {
        missing = 'outbox takes no argument, or --to EMAIL';
        break;
      }
      return withServices(config, { migrate: false }, async ({ mail }, db) => {
        const messages = await db.withSystem('operator reads the development outbox', (tx) => mail.read(tx, to));
        if (messages.length === 0) process.stdout.write(to ? `(no mail to ${to} in the outbox)\n` : '(the outbox is empty)\n');
        for (const m of messages) process.stdout.write(`To: ${m.to}\nSubject: ${m.subject}\n\n${m.body}\n\n`);
        return 0;
      });
    }
    case 'worker': {
      const { workUntilSignal } = await import('./worker.js');
      return workUntilSignal(config);
    }
    case 'unlock': {
      if (!sub || rest.length > 0) {
        missing = 'unlock takes one argument: the account\u2019s email address';
        break;
      }
      const { clearLockout } = await import('./domains/identity/index.js');
      return withServices(config, { migrate: false }, async ({ audit, sealer }, db) => {
        const ctx = systemContext('cli unlock');
        const outcome = await db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
          const u = await one<{ id: string }>(tx, sql`select id from users where ${await userWithEmail(sealer, tx, sub)}`);
          if (!u) return null;
          const cleared = await clearLockout(tx, u.id, systemClock.now());
          // Evidence only when something changed: an operator's no-op is not an unlock.
          if (cleared && (cleared.wasLocked || cleared.failures > 0)) {
            await audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.account_unlocked', target: { type: 'user', id: u.id }, details: { wasLocked: cleared.wasLocked, failures: cleared.failures } });
          }
          return cleared;
        });
        if (!outcome) {
          process.stderr.write(`no account ${sub}\n`);
          return 2;
        }
        if (outcome.wasLocked) process.stdout.write(`unlocked ${sub} (it was locked after ${outcome.failures} failed attempts)\n`);
        else if (outcome.failures > 0) process.stdout.write(`${sub} was not locked; its ${outcome.failures} failed attempts are forgotten\n`);
        else process.stdout.write(`${sub} was not locked; nothing to do\n`);
        return 0;
      });
    }
    case 'allowlist': {
      const slug = flag(rest, '--org');
      if (sub !== 'clear' || !slug) {
        missing = sub !== 'clear' ? 'allowlist has one subcommand: clear' : 'allowlist clear needs --org SLUG';
        break;
      }
      const { clearAdminIpAllowlist } = await import('./domains/tenancy/index.js');
      return withServices(config, { migrate: false }, async ({ audit }, db, owner) => {
        const org = await orgBySlug(owner, slug);
        if (!org) return 2;
        // The server's writer, with the webhook outbox: the org's subscribers to org.settings_updated hear of it too.
        const cleared = await clearAdminIpAllowlist({ db, audit }, systemContext('cli allowlist clear'), org.org_id);
        if (cleared === null) {
          process.stderr.write(`no settings for organization ${slug}\n`);
          return 2;
        }
        process.stdout.write(`cleared the admin IP allowlist of ${slug}${cleared.length > 0 ? ` (was ${cleared.join(', ')})` : ' (it was empty)'}\n`);
        return 0;
      });
    }
    case 'plan': {
      const args = [sub, ...rest].filter((a): a is string => a !== undefined);
      const slug = flag(args, '--org');
      const name = args.find((a, i) => a !== '--org' && args[i - 1] !== '--org');
      if (!slug || !name) {
        missing = 'plan needs --org SLUG and the plan\u2019s name';
        break;
      }
      if (!config.uploads.plans[name]) {
        process.stderr.write(`no plan ${name}: PALISADE_UPLOAD_PLANS defines ${Object.keys(config.uploads.plans).join(', ')}\n`);
        return 2;
      }
      const { setOrgPlan } = await import('./domains/files/index.js');
      return withServices(config, { migrate: false }, async ({ audit }, db, owner) => {
        const org = await orgBySlug(owner, slug);
        if (!org) return 2;
        const changed = await setOrgPlan({ db, audit }, systemContext('cli plan'), org.org_id, name);
        if (!changed) {
          process.stderr.write(`no settings for organization ${slug}\n`);
          return 2;
        }
        process.stdout.write(`${slug} is on the ${name} plan (was ${changed.from})\n`);
        return 0;
      });
    }
    case 'keys': {
      const { dataKeyCommand, isDataKeySubcommand } = await import('./data-key-cli.js');
      const { createKekCommand, keysCommand } = await import('./keys-command.js');
      if (isDataKeySubcommand(sub)) {
        const slug = flag(rest, '--org');
        if (sub !== 'rotation-status' && !slug) {
          missing = `keys ${sub} needs --org SLUG`;
          break;
        }
        return withServices(config, { migrate: false }, (services, _db, owner) =>
          dataKeyCommand(sub, slug, services, owner, (s) => process.stdout.write(s), (s) => process.stderr.write(s)));
      }
      if (sub === 'create-kek') return createKekCommand(config, rest[0]);
      if (sub !== 'status' && sub !== 'rotate-kek') {
        missing = 'keys has these subcommands: status, rotate-kek, create-kek (KEKs); rotate-data-key, rollback-data-key, rotation-status (an org\u2019s data key)';
        break;
      }
      const batch = flag(rest, '--batch');
      if (batch !== undefined && !/^[1-9]\d{0,4}$/.test(batch)) {
        missing = 'keys rotate-kek --batch takes a number of orgs per transaction, 1 to 99999';
        break;
      }
      const newKek = flag(rest, '--new-kek');
      return withServices(config, { migrate: false }, (s, db, owner) => keysCommand(sub, { config, keyring: s.keyring, audit: s.audit, db, owner }, batch ? Number(batch) : undefined, newKek));
    }
    default:
      break;
  }
  // A known command with missing or unknown arguments.
  process.stderr.write(`${missing ? `${missing}\n` : ''}${USAGE}\n`);
  return 2;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runCli(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(err instanceof ConfigError ? 2 : 1);
    },
  );
}
