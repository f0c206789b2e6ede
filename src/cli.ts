import { writeFileSync } from 'node:fs';
import { ConfigError, loadConfig } from './config/index.js';
import { openDatabase } from './db/open.js';
import { hasAnyUser, seedDemo } from './demo.js';
import { auditCheckpoint, auditVerify, chainKeysFrom, createAuditWriter, type Query } from './domains/audit/index.js';
import { systemClock } from './kernel/clock.js';
import { SYSTEM_ORG_ID } from './kernel/ids.js';
import { systemContext } from './kernel/context.js';
import { one } from './db/database.js';
import { sql } from 'kysely';
import { migrationSteps, OUTBOX_ONLY_MAIL_WARNING, serveUntilSignal } from './main.js';
import { buildApp } from './app.js';
import { refusal, startupCheck, type StartupCheck } from './startup.js';
import { createLogger } from './logging.js';
import { Keyring } from './crypto/index.js';
import { createSealer } from './domains/keys/index.js';
import { createOutboxMail } from './domains/mail/index.js';
import { clearLockout } from './domains/identity/index.js';
import { clearAdminIpAllowlist } from './domains/tenancy/index.js';
import { outboxStatements } from './domains/webhooks/index.js';

const USAGE = `usage: palisade <command>
  serve                       start the server (same as npm start)
  migrate                     apply database migrations as the owner role
  demo --json FILE            seed the demo orgs (acme, globex) and write their logins to FILE
  audit verify [--org SLUG|ID] [--checkpoints FILE]
                              verify the audit chains and compare them with their latest checkpoints;
                              exit 1 naming each broken event, cut or missing chain, or forged checkpoint
  audit checkpoint            verify, then append each sound chain's head to the checkpoint file
  outbox [--to EMAIL]         print the development mail outbox (verification and reset links, invitations)
  unlock EMAIL                lift an account lockout now (audited as the operator)
  allowlist clear --org SLUG  empty an org's admin IP allowlist (break-glass; audited as the operator)
  worker                      run only the webhook delivery worker (PostgreSQL; serve runs one too)`;

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
  const config = loadConfig();
  switch (cmd) {
    case 'serve':
      return serveUntilSignal(config);
    case 'migrate': {
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
      const { db, owner } = await openDatabase(config.database, { migrate: true, keyedSteps: migrationSteps(config) });
      try {
        if (await hasAnyUser(db)) {
          process.stderr.write('this database already has users: demo seeds an empty database only\n');
          return 2;
        }
        const audit = createAuditWriter({ db, clock: systemClock, keys: chainKeysFrom(new Keyring([...config.keks])), onError: () => undefined });
        const data = await seedDemo(db, audit);
        writeFileSync(file, JSON.stringify(data, null, 2), { mode: 0o600 });
        process.stdout.write(`seeded ${data.orgs.map((o) => o.slug).join(', ')}; logins written to ${file}\n`);
      } finally {
        await db.close();
        await owner.close();
      }
      return 0;
    }
    case 'audit': {
      if (sub !== 'verify' && sub !== 'checkpoint') break;
      const { db, owner } = await openDatabase(config.database, { migrate: false });
      try {
        // Operator tool: reads every org's chain over the owner connection (needs a role that
        // bypasses RLS, e.g. the migration owner when it is superuser or BYPASSRLS).
        const query: Query = (text, params) => owner.query(text, params);
        const keys = chainKeysFrom(new Keyring([...config.keks]));
        const opts = { org: flag(rest, '--org'), checkpointFile: flag(rest, '--checkpoints') ?? config.auditCheckpoints.file };
        const outcome = sub === 'verify' ? await auditVerify(query, keys, opts) : await auditCheckpoint(query, keys, systemClock, opts);
        process.stdout.write(outcome.out);
        process.stderr.write(outcome.err);
        return outcome.code;
      } finally {
        await db.close();
        await owner.close();
      }
    }
    case 'outbox': {
      const to = flag([sub ?? '', ...rest], '--to');
      const { db, owner } = await openDatabase(config.database, { migrate: false });
      try {
        const mail = createOutboxMail(createSealer(new Keyring([...config.keks])));
        const messages = await db.withSystem('operator reads the development outbox', (tx) => mail.read(tx, to));
        if (messages.length === 0) process.stdout.write('(the outbox is empty)\n');
        for (const m of messages) process.stdout.write(`To: ${m.to}\nSubject: ${m.subject}\n\n${m.body}\n\n`);
        return 0;
      } finally {
        await db.close();
        await owner.close();
      }
    }
    case 'worker': {
      // A second process on an embedded data directory would corrupt it: PostgreSQL only.
      if (config.database.kind !== 'postgres') {
        process.stderr.write('palisade worker needs PostgreSQL (DATABASE_URL); on the embedded engine `serve` runs the worker\n');
        return 2;
      }
      const logger = createLogger(config.logLevel);
      const { db, owner } = await openDatabase(config.database, { migrate: false });
      let check: StartupCheck;
      try {
        check = await startupCheck(db, owner, config);
      } finally {
        await owner.close();
      }
      if (check.problems.length > 0) {
        await db.close();
        process.stderr.write(`${refusal(check.problems)}\n`);
        return 1;
      }
      for (const w of check.warnings) logger.warn(w);
      if (config.env === 'production') logger.warn(OUTBOX_ONLY_MAIL_WARNING);
      const built = await buildApp({ config, db, clock: systemClock, logger });
      // Graceful: deliveries in flight are recorded before the process exits, so none is sent twice.
      // The handlers go in before the worker starts and before "running" is printed: until a
      // listener exists a signal has its default effect and kills the process mid-delivery.
      let closing: Promise<number> | null = null;
      const stopped = new Promise<number>((resolve) => {
        const shutdown = () => {
          closing ??= built.app.close().then(() => db.close()).then(
            () => 0,
            (err: unknown) => {
              logger.error({ err }, 'worker shutdown failed');
              return 1;
            },
          );
          void closing.then(resolve);
        };
        for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, shutdown);
      });
      built.services.webhookWorker.start();
      built.services.checkpoints.start();
      process.stdout.write('webhook worker running\n');
      return stopped;
    }
    case 'unlock': {
      if (!sub) break;
      const { db, owner } = await openDatabase(config.database, { migrate: false });
      try {
        const audit = createAuditWriter({ db, clock: systemClock, keys: chainKeysFrom(new Keyring([...config.keks])), onError: () => undefined });
        const ctx = systemContext('cli unlock');
        const outcome = await db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
          const u = await one<{ id: string }>(tx, sql`select id from users where lower(email) = lower(${sub})`);
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
      } finally {
        await db.close();
        await owner.close();
      }
    }
    case 'allowlist': {
      const slug = flag(rest, '--org');
      if (sub !== 'clear' || !slug) break;
      const { db, owner } = await openDatabase(config.database, { migrate: false });
      try {
        // The org by slug over the owner connection, as `audit verify` does (nothing is bound yet).
        const [org] = await owner.query<{ org_id: string }>('select org_id from organizations where slug = $1', [slug]);
        if (!org) {
          process.stderr.write(`no organization ${slug}\n`);
          return 2;
        }
        // With the webhook outbox: the org's subscribers to org.settings_updated hear of it too.
        const audit = createAuditWriter({
          db, clock: systemClock, keys: chainKeysFrom(new Keyring([...config.keks])), onError: () => undefined, alsoWrite: outboxStatements,
        });
        const cleared = await clearAdminIpAllowlist({ db, audit }, systemContext('cli allowlist clear'), org.org_id);
        if (cleared === null) {
          process.stderr.write(`no settings for organization ${slug}\n`);
          return 2;
        }
        process.stdout.write(`cleared the admin IP allowlist of ${slug}${cleared.length > 0 ? ` (was ${cleared.join(', ')})` : ' (it was empty)'}\n`);
        return 0;
      } finally {
        await db.close();
        await owner.close();
      }
    }
    default:
      break;
  }
  process.stderr.write(`${USAGE}\n`);
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
