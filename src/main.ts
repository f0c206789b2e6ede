import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, VERSION } from './app.js';
import { ConfigError, loadConfig, type Config } from './config/index.js';
import { hasAnyUser, seedDemo, type DemoData } from './demo.js';
import { createMetricsServer } from './http/metrics-server.js';
import { systemClock } from './kernel/clock.js';
import { createLogger } from './logging.js';
import { openCheckedDatabase } from './startup.js';

/** Where the demo logins of this database are kept: one file per database, so they always match it. */
function demoLoginsFile(config: Config): string {
  const db = config.database;
  if (db.kind === 'postgres') return join(config.stateDir, `demo-logins-${new URL(db.ownerUrl).pathname.slice(1) || 'postgres'}.json`);
  if (db.dataDir === null || db.dataDir === join(config.stateDir, 'data')) return join(config.stateDir, 'demo-logins.json');
  return `${db.dataDir}.demo-logins.json`;
}

// Where the entry points, the tests and the bench have always taken it from.
export { migrationSteps } from './startup.js';

/** The one composition root: config → dependencies → buildApp → listen. */
export async function serve(config: Config): Promise<() => Promise<void>> {
  const logger = createLogger(config.logLevel);
  if (config.generatedDevSecrets) {
    logger.warn(`using development keys from ${config.stateDir}/dev-secrets.json: never use them in production`);
  }
  if (config.uploads.clamd === null) {
    logger.warn(config.uploads.unscanned
      ? 'uploads are kept WITHOUT a malware scan (PALISADE_UPLOADS_UNSCANNED=true, development only)'
      : 'no malware scanner (PALISADE_CLAMD is not set): every file upload is refused until one is configured');
  }
  const db = await openCheckedDatabase(config, logger, { migrate: true });
  const built = await buildApp({ config, db, clock: systemClock, logger });
  // Demo logins never in production: not seeded, not read from a file, not printed.
  let demo: DemoData | null = null;
  const demoFile = demoLoginsFile(config);
  if (config.env !== 'production') {
    if (!(await hasAnyUser(db))) {
      demo = await seedDemo(db, built.services);
      mkdirSync(dirname(demoFile), { recursive: true });
      writeFileSync(demoFile, JSON.stringify(demo, null, 2), { mode: 0o600 });
    } else if (existsSync(demoFile)) {
      demo = JSON.parse(readFileSync(demoFile, 'utf8')) as DemoData;
    }
  }
  const address = await built.app.listen({ port: config.port, host: config.host });
  // Prometheus gets a listener of its own (config: METRICS_PORT); the API listener never serves /metrics.
  let metricsServer: FastifyInstance | null = null;
  let metricsAddress: string | null = null;
  if (config.metrics) {
    metricsServer = await createMetricsServer({ metrics: built.metrics, token: config.metrics.token, logger });
    metricsAddress = await metricsServer.listen({ port: config.metrics.port, host: config.metrics.host });
  }
  // Deliveries run in the server process; more instances (or `palisade worker`) share the queue.
  built.services.startBackground();
  const lines = [`Palisade ${VERSION} listening on ${address} (database: ${db.engine}, public origin ${config.publicOrigin})`];
  if (metricsAddress) lines.push(`Metrics on ${metricsAddress}/metrics${config.metrics?.token ? ' (bearer token: PALISADE_METRICS_TOKEN)' : ' (loopback, no token)'}`);
  lines.push(`Admin console: ${config.publicOrigin}/`);
  if (demo) {
    lines.push('Demo logins (also in ' + demoFile + '):');
    for (const l of demo.logins) lines.push(`  ${l.org.padEnd(7)} ${l.role.padEnd(18)} ${l.email.padEnd(30)} ${l.password}`);
    lines.push(`Sign in: curl -c jar -H 'content-type: application/json' -d '{"email":"${demo.logins[0]?.email}","password":"…"}' ${address}/api/auth/login`);
    lines.push(`Then: curl -b jar ${address}/api/me   (state-changing calls also need -H 'origin: ${config.publicOrigin}')`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  return async () => {
    await metricsServer?.close();
    await built.app.close();
    await db.close();
  };
}

/**
 * Serves until SIGINT or SIGTERM, then closes gracefully: deliveries in flight are recorded and
 * a last audit checkpoint is written. Resolves with the exit code.
 */
export async function serveUntilSignal(config: Config): Promise<number> {
  // Handlers first: a signal that arrives while the server starts (its worker may already be
  // delivering) must still stop it gracefully rather than kill it mid-delivery.
  let stop: (() => Promise<void>) | null = null;
  let stopRequested = false;
  let exit: (code: number) => void = () => undefined;
  const exited = new Promise<number>((resolve) => (exit = resolve));
  const close = (s: () => Promise<void>) => void s().then(() => exit(0), () => exit(1));
  const shutdown = () => {
    if (stopRequested) return;
    stopRequested = true;
    if (stop) close(stop);
  };
  // on, not once: a terminal's Ctrl-C reaches npm, bin/start.mjs and the server, so several signals
  // arrive; a second one with no listener left would kill the process before its checkpoint.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, shutdown);
  stop = await serve(config);
  if (stopRequested) close(stop);
  return exited;
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`configuration refused: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  process.exit(await serveUntilSignal(config));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
