import type { Logger } from 'pino';
import type { Config } from './config/index.js';
import { openKeyring } from './crypto/index.js';
import type { Database, Tx } from './db/database.js';
import type { RequestContext } from './kernel/context.js';
import type { Clock } from './kernel/clock.js';
import { errorCodeOf } from './kernel/errors.js';
import { createApiKeyService, createKeyUsage } from './domains/api-keys/index.js';
import { createEgressFetch, createWebhookService, createWebhookTransport, createWebhookWorker, outboxStatements } from './domains/webhooks/index.js';
import { createAssetService } from './domains/assets/index.js';
import { createAuditStreamService, createStreamSender, createStreamWorker, createSyslogTransport } from './domains/audit-streams/index.js';
import { chainKeysFrom, createAuditReader, createAuditVerifier, createAuditWriter, createCheckpointer } from './domains/audit/index.js';
import { createIdentityService, createLockout, createMagicLinkService, createMfaService, createPasskeyService } from './domains/identity/index.js';
import { createInboundService } from './domains/inbound/index.js';
import { createCredentialService, createVault } from './domains/credentials/index.js';
import {
  BREAK_GLASS_SESSION_SECONDS, createConnectionService, createConnectionTests, createDomainService, createFlowSealer, createSamlFlowSealer, createSamlSignIn,
  createSsoEnforcement, createSsoSignIn, dnsTxtLookup,
} from './domains/sso/index.js';
import { createDataKeyJob, createDataKeyService, createSealer, createShredder } from './domains/keys/index.js';
import { archivePath, createArchiveWriter, createExportJob, createExportService, createSigningKeys } from './domains/exports/index.js';
import { rm } from 'node:fs/promises';
import { clamdScanner, createFileService, openFileStore, type ScannerFailure } from './domains/files/index.js';
import { createMailWorker, createOutboxMail, createSmtpTransport } from './domains/mail/index.js';
import { createSessionService, createSessionTouches, createSignInService } from './domains/sessions/index.js';
import { createSocialIdentities, createSocialSignIn } from './domains/social/index.js';
import {
  createInvitationService,
  createMemberService,
  createOrgService,
  createDeletionService,
  createSubjectService,
  createProjectService,
  createRoleService,
} from './domains/tenancy/index.js';

export type ServicesConfig = Pick<
  Config,
  'env' | 'publicOrigin' | 'keks' | 'sessionSecret' | 'session' | 'lockout' | 'webauthn' | 'webhooks' | 'auditCheckpoints' | 'dataKeys' | 'exports' | 'dnsServers' | 'social' | 'mail' | 'uploads'
>
  & Partial<Pick<Config, 'kekProvider'>>;

/**
 * Every service of Palisade, wired once, without HTTP: the server (buildApp), the worker process,
 * the CLI's operator commands and the tests all take their keyring, audit writer and services
 * from here, so none of them can wire a writer that forgets the webhook outbox or the checkpoints.
 * Nothing starts here: timers and the delivery loop run only after `startBackground()`.
 */
/** What the HTTP layer counts of the services' work (metrics live with the app). */
export interface ServiceHooks {
  scannerUnavailable?(reason: ScannerFailure | 'not_configured'): void;
}

export function createServices(config: ServicesConfig, db: Database, clock: Clock, logger: Logger, hooks: ServiceHooks = {}) {
  // PALISADE_KEKS by default; a PKCS#11 token's session when configured (closed by close()).
  const keyring = openKeyring({ keks: config.keks, kekProvider: config.kekProvider ?? { kind: 'env' } });
  const sealer = createSealer(keyring);
  // With SMTP_URL the outbox is a queue the mail worker sends from; without, the development outbox.
  const smtp = config.mail.smtp;
  const mailTransport = smtp ? createSmtpTransport(smtp, config.mail.from) : null;
  const mail = createOutboxMail(sealer, { clock, deliver: mailTransport !== null });
  const mailWorker = smtp && mailTransport
    ? createMailWorker({ db, clock, sealer, transport: mailTransport, logger, publicOrigin: config.publicOrigin, timeoutMs: smtp.timeoutMs })
    : null;
  const chainKeys = chainKeysFrom(keyring);
  // Started by the processes that serve (main.ts, `palisade worker`): heads of the chains they append to leave the database.
  const checkpoints = createCheckpointer({
    db, keys: chainKeys, clock, logger, file: config.auditCheckpoints.file, intervalMs: config.auditCheckpoints.intervalSeconds * 1000,
  });
  const auditReader = createAuditReader({ db, sealer });
  const destination = { allowLoopback: config.webhooks.allowLoopback, requireHttps: config.env === 'production' };
  const webhookTransport = createWebhookTransport(destination);
  // Audit streams read audit_events after their cursor: an append only wakes this process's stream worker.
  const streamSender = createStreamSender({
    http: webhookTransport, syslog: createSyslogTransport({ allowLoopback: destination.allowLoopback, requireTls: config.env === 'production' }), clock, hostname: new URL(config.publicOrigin).hostname,
  });
  const streamWorker = createStreamWorker({ db, clock, sealer, reader: auditReader, sender: streamSender, logger });
  // Webhook events are audit events: the outbox is written by the same append, in the same transaction.
  const audit = createAuditWriter({
    db, clock, keys: chainKeys, sealer, onError: (err) => logger.error({ err }, 'audit append failed'), alsoWrite: outboxStatements,
    onAppend: (orgId) => {
      checkpoints.noteAppend(orgId);
      streamWorker.nudge(orgId);
    },
  });
  const auditVerifier = createAuditVerifier({ db, keys: chainKeys, clock, checkpointFile: config.auditCheckpoints.file });
  const sessionTouches = createSessionTouches({ db, onError: (err) => logger.error({ err }, 'session touch failed') });
  const sessions = createSessionService({
    db,
    clock,
    sealer,
    secret: config.sessionSecret,
    idleSeconds: config.session.idleSeconds,
    absoluteSeconds: config.session.absoluteSeconds,
    touchIntervalSeconds: config.session.touchIntervalSeconds,
    touches: sessionTouches,
  });
  const keyUsage = createKeyUsage({ db, onError: (err) => logger.error({ err }, 'api key last-used flush failed') });
  const apiKeys = createApiKeyService({ db, audit, clock, usage: keyUsage });
  const enforcement = createSsoEnforcement({ db, clock, audit, mail, sealer, publicOrigin: config.publicOrigin });
  const tenancyDeps = {
    db, audit, clock, mail, sealer, publicOrigin: config.publicOrigin,
    onPrivilegeChange: (tx: Parameters<typeof sessions.markRotate>[0], userId: string) => sessions.markRotate(tx, userId),
    onProjectDeleted: (tx: Tx, ctx: RequestContext, orgId: string, projectId: string) => apiKeys.revokeBoundTo(tx, ctx, orgId, projectId),
    sessionAllowed: (tx: Tx, userId: string, sessionId: string) => enforcement.assertSessionAllowed(tx, userId, sessionId),
  };
  const orgs = createOrgService(tenancyDeps);
  const orgDeletion = createDeletionService({ db, audit, clock, graceDays: config.dataKeys.orgDeletionGraceDays });
  const members = createMemberService(tenancyDeps);
  const subjects = createSubjectService({
    db, audit, clock, sealer, onPrivilegeChange: tenancyDeps.onPrivilegeChange,
    removeArchives: async (orgId, ids) => {
      for (const id of ids) await rm(archivePath(config.exports.dir, orgId, id), { force: true });
    },
  });
  const invitations = createInvitationService(tenancyDeps);
  const roles = createRoleService(tenancyDeps);
  const projects = createProjectService(tenancyDeps);
  const assets = createAssetService({ db, audit, clock });
  const fileStore = openFileStore(config.uploads.store);
  const files = createFileService({
    db, audit, clock, sealer, logger,
    store: fileStore,
    scanner: config.uploads.clamd ? clamdScanner(config.uploads.clamd) : null,
    unscanned: config.uploads.unscanned,
    development: config.env !== 'production',
    concurrency: config.uploads.concurrency,
    plans: config.uploads.plans,
    onScannerUnavailable: (reason) => hooks.scannerUnavailable?.(reason),
  });
  const inbound = createInboundService({ db, audit, clock, sealer });
  const credentials = createCredentialService({ db, audit, clock, sealer });
  // The host app's way to its integrations' credentials (docs/integrations.md): opened by name, counted, audited.
  const vault = createVault({ db, audit, clock, sealer, onError: (err) => logger.error({ code: errorCodeOf(err) }, 'integration credential use log write failed') });
  const domains = createDomainService({ db, audit, clock, dns: dnsTxtLookup(config.dnsServers), onVerified: enforcement.domainVerified });
  // An identity provider on this machine is the same development opt-in as a local webhook receiver.
  const egress = createEgressFetch({ allowLoopback: config.webhooks.allowLoopback });
  const connections = createConnectionService({
    db, audit, clock, sealer, egress, publicOrigin: config.publicOrigin, allowInsecureIssuers: config.webhooks.allowLoopback,
  });
  const ssoTests = createConnectionTests({ db, clock, audit, sealer });
  const sso = createSsoSignIn({
    db, clock, audit, sealer, connections, domains, egress, flows: createFlowSealer(config.sessionSecret), tests: ssoTests,
    publicOrigin: config.publicOrigin, allowInsecureIssuers: config.webhooks.allowLoopback,
    onPrivilegeChange: (tx, userId) => sessions.markRotate(tx, userId), gate: enforcement.gate,
  });
  // Social sign-in: the deployment's providers, on the SSO domain's flow cookie, OIDC client and handover.
  const social = createSocialSignIn({
    db, clock, audit, sealer, egress, flows: createFlowSealer(config.sessionSecret), handover: sso, providers: config.social.providers,
    signUp: config.social.signUp, publicOrigin: config.publicOrigin, allowInsecureIssuers: config.webhooks.allowLoopback, ssoGate: enforcement,
  });
  const saml = createSamlSignIn({ db, clock, connections, domains, sso, tests: ssoTests, flows: createSamlFlowSealer(config.sessionSecret), publicOrigin: config.publicOrigin });
  const lockout = createLockout(db, config.lockout, () => clock.now());
  const signIn = createSignInService({ db, clock, audit, sessions, gate: enforcement.gate, breakGlassSeconds: BREAK_GLASS_SESSION_SECONDS });
  const mfa = createMfaService({ db, audit, clock, sealer, lockout, mail, sessionEffects: signIn });
  const passkeys = createPasskeyService({ db, audit, clock, sealer, webauthn: config.webauthn, mail, sessionEffects: signIn });
  const identity = createIdentityService({
    db, audit, clock, mail, sealer, publicOrigin: config.publicOrigin, lockout, ssoGate: enforcement,
    revokeSessions: async (tx, userId, reason, keep) => {
      await sessions.revokeAll(tx, userId, reason, keep);
    },
  });
  const webhooks = createWebhookService({ db, audit, clock, sealer, destination });
  const webhookWorker = createWebhookWorker({ db, clock, sealer, audit, logger, transport: webhookTransport });
  const auditStreams = createAuditStreamService({
    db, audit, clock, sealer, sender: streamSender, destination: { ...destination, requireTls: config.env === 'production' },
    onChange: (orgId) => streamWorker.streamsChanged(orgId),
  });
  const dataKeys = createDataKeyService({ db, audit, clock, sealer, keyring, settings: config.dataKeys });
  const shredder = createShredder({ db, audit, clock, sealer });
  const dataKeyJob = createDataKeyJob({ db, clock, logger, keys: dataKeys, shredder });
  // Tenant exports: the archives are written by the export job of whichever process serves or works.
  const exportSigning = createSigningKeys({ db, sealer, clock });
  const archives = createArchiveWriter({ db, sealer, audit, clock, signing: exportSigning, dir: config.exports.dir, retentionDays: config.exports.retentionDays });
  const exportJob = createExportJob({ db, clock, logger, archives });
  const exports = createExportService({
    db, audit, clock, sealer, dir: config.exports.dir, linkMinutes: config.exports.linkMinutes, onRequested: () => exportJob.wake(),
  });

  return {
    keyring, sealer, chainKeys, mail, audit, auditReader, auditVerifier, checkpoints,
    sessions, sessionTouches, signIn, enforcement, apiKeys, keyUsage, orgs, orgDeletion, members, subjects, invitations, roles, projects, assets, files, inbound, credentials, vault, domains, connections, sso, ssoTests, saml, social, socialIdentities: createSocialIdentities({ db, audit, sealer }),
    lockout, mfa, passkeys, identity, webhooks, webhookWorker, mailWorker, auditStreams, streamWorker, streamSender, dataKeys, dataKeyJob, shredder, exportSigning, archives, exportJob, exports,
    magicLinks: createMagicLinkService({ db, clock, audit, mail, sealer, publicOrigin: config.publicOrigin }),
    /** The background jobs of a serving process (`serve`, `palisade worker`): webhook and mail delivery, audit streams, data-key rotation, tenant exports, audit checkpoints. */
    startBackground(): void {
      webhookWorker.start();
      streamWorker.start();
      dataKeyJob.start();
      exportJob.start();
      mailWorker?.start();
      checkpoints.start();
    },
    /** Graceful end: pending last-used notes are written, deliveries in flight recorded, a last checkpoint taken. */
    async close(): Promise<void> {
      await keyUsage.close();
      await sessionTouches.settled();
      await webhookWorker.stop();
      await streamWorker.stop();
      await dataKeyJob.stop();
      await exportJob.stop();
      await mailWorker?.stop();
      mailTransport?.close();
      // After the worker, so that its last appends are checkpointed too.
      await checkpoints.stop();
      fileStore.close?.();
      keyring.close();
    },
  };
}

export type Services = ReturnType<typeof createServices>;
