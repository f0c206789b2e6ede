/**
 * Fresh target objects for the authorization matrix, written with direct SQL through the
 * runtime role (RLS-bound `withTenant`), so that an allowed request finds a real object and a
 * denied one is denied by authorization, not by a missing row.
 */
import { sql } from 'kysely';
import { newId, randomToken, sha256Hex } from '../../src/crypto/index.js';
import { exec, one } from '../../src/db/database.js';
import { systemContext, type RequestContext } from '../../src/kernel/context.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';
import { Readable } from 'node:stream';
import { ALL_PERMISSIONS, PermissionSet, API_KEY_PERMISSIONS, BROWSER_SAFE_PERMISSIONS, PROJECT_KEY_PERMISSIONS, type BuiltinRole } from '../../src/kernel/permissions.js';
import { totpCodeAt } from '../../src/domains/identity/index.js';
import { insertUserSql, userWithEmail } from '../../src/domains/identity/people.js';
import { insertOrg, resolveAccess } from '../../src/domains/tenancy/index.js';
import { newWebhookSecret } from '../../src/domains/webhooks/index.js';
import type { KeyCredential } from './cases.js';
import { ORIGIN, type TestApp } from '../support/app.js';
import { auditRows } from '../support/evidence.js';
import { SoftAuthenticator } from '../support/authenticator.js';
import type { LoopbackDns } from '../support/dns.js';

export interface OrgFixture {
  slug: string;
  id: string;
  ownerId: string;
  /** The project the restricted demo users are assigned to ('Production'). */
  assignedProject: string;
  /** A project nobody restricted is assigned to ('Staging'). */
  unassignedProject: string;
  /** Demo users restricted to assigned projects (project_viewer, restricted_member). */
  restrictedUserIds: string[];
}

let serial = 0;
const unique = (): string => `${Date.now().toString(36)}${(serial++).toString(36)}`;

export class Fixtures {
  private readonly ids = new Map<string, string>();
  private readonly passwords = new Map<string, string>();
  private readonly keyTokens = new Map<string, string>();
  private readonly revokedCookies = new Map<string, string>();
  readonly orgs = new Map<string, OrgFixture>();

  constructor(private readonly h: TestApp) {}

  get app(): TestApp {
    return this.h;
  }

  async init(): Promise<void> {
    await this.h.t.db.withSystem('matrix fixtures', async (tx) => {
      for (const login of this.h.demo.logins) {
        const row = await one<{ id: string }>(tx, sql`select id from users where ${await userWithEmail(this.h.built.services.sealer, tx, login.email)}`);
        if (!row) throw new Error(`demo user ${login.email} missing`);
        this.ids.set(login.email, row.id);
        this.passwords.set(login.email, login.password);
      }
    });
    for (const org of this.h.demo.orgs) {
      const [assigned, unassigned] = org.projects;
      if (!assigned || !unassigned) throw new Error(`demo org ${org.slug} needs two projects`);
      const logins = this.h.demo.logins.filter((l) => l.org === org.slug);
      this.orgs.set(org.slug, {
        slug: org.slug,
        id: org.id,
        ownerId: this.userId(this.h.user(org.slug, 'owner').email),
        assignedProject: assigned.id,
        unassignedProject: unassigned.id,
        restrictedUserIds: logins.filter((l) => l.role === 'project_viewer' || l.role === 'restricted_member').map((l) => this.userId(l.email)),
      });
    }
  }

  org(slug: string): OrgFixture {
    const o = this.orgs.get(slug);
    if (!o) throw new Error(`no org fixture ${slug}`);
    return o;
  }

  userId(email: string): string {
    const id = this.ids.get(email);
    if (!id) throw new Error(`unknown user ${email}`);
    return id;
  }

  password(email: string): string {
    const p = this.passwords.get(email);
    if (!p) throw new Error(`no known password for ${email}`);
    return p;
  }

  setPassword(email: string, password: string): void {
    this.passwords.set(email, password);
  }

  /** The membership row of a user, to check the demo seeding against the identity specs. */
  async membership(orgId: string, userId: string): Promise<{ role: string; restricted: boolean } | undefined> {
    return this.h.t.db.withTenant({ orgId, userId, projectIds: null }, (tx) =>
      one<{ role: string; restricted: boolean }>(tx, sql`select role, restricted from memberships where org_id = ${orgId} and user_id = ${userId}`),
    );
  }

  /** A new user who is a member of `orgId` with `role`, assigned to `projectIds`. */
  async member(orgId: string, opts: { role: BuiltinRole; restricted: boolean; projectIds: readonly string[] }): Promise<{ userId: string; email: string }> {
    const userId = newId();
    const email = `matrix-${unique()}@fixtures.test`;
    await this.h.t.db.withTenant({ orgId, projectIds: null }, async (tx) => {
      await (await insertUserSql(this.h.built.services.sealer, tx, userId, { email, name: 'matrix fixture' })).execute(tx);
      await exec(tx, sql`insert into memberships (org_id, user_id, role, restricted) values (${orgId}, ${userId}, ${opts.role}, ${opts.restricted})`);
      for (const p of opts.projectIds) {
        await exec(tx, sql`insert into project_access (org_id, project_id, user_id) values (${orgId}, ${p}, ${userId})`);
      }
    });
    this.ids.set(email, userId);
    return { userId, email };
  }

  async project(orgId: string, assignUserIds: readonly string[]): Promise<string> {
    const id = newId();
    await this.h.t.db.withTenant({ orgId, projectIds: null }, async (tx) => {
      await exec(tx, sql`insert into projects (org_id, id, name) values (${orgId}, ${id}, ${`matrix ${unique()}`})`);
      for (const u of assignUserIds) {
        await exec(tx, sql`insert into project_access (org_id, project_id, user_id) values (${orgId}, ${id}, ${u})`);
      }
    });
    return id;
  }

  async customRole(orgId: string): Promise<string> {
    const id = newId();
    await this.h.t.db.withTenant({ orgId, projectIds: null }, (tx) =>
      exec(tx, sql`insert into custom_roles (org_id, id, name, permissions) values (${orgId}, ${id}, ${`matrix-${unique()}`}, ${['projects:read']}::text[])`),
    );
    return id;
  }

  /** A pending invitation; returns its id and the token that accepts it. */
  async invitation(orgId: string, invitedBy: string, email = `invitee-${unique()}@fixtures.test`): Promise<{ id: string; token: string }> {
    const id = newId();
    const secret = randomToken(32);
    const expires = new Date(this.h.clock.now().getTime() + 24 * 3600 * 1000);
    await this.h.t.db.withTenant({ orgId, projectIds: null }, (tx) =>
      exec(
        tx,
        sql`insert into invitations (org_id, id, email, role, restricted, token_hash, invited_by, expires_at)
            values (${orgId}, ${id}, ${email}, 'viewer', false, ${sha256Hex(secret)}, ${invitedBy}, ${expires.toISOString()})`,
      ),
    );
    return { id, token: `pal_inv_${orgId}.${id}.${secret}` };
  }

  async asset(orgId: string, projectId: string): Promise<string> {
    const id = newId();
    await this.h.t.db.withTenant({ orgId, projectIds: null }, (tx) =>
      exec(tx, sql`insert into assets (org_id, project_id, id, name, kind) values (${orgId}, ${projectId}, ${id}, ${`matrix-${unique()}`}, 'host')`),
    );
    return id;
  }

  /**
   * An available file in the project, received by the files service as its org's owner's upload
   * (through the service, not HTTP: an org's MFA policy in some cases would refuse the owner's
   * session). The matrix app keeps files unscanned.
   */
  async file(orgId: string, projectId: string, ownerId: string): Promise<string> {
    const now = new Date();
    const ctx: RequestContext = {
      requestId: 'matrix-fixture', ip: '127.0.0.1', userAgent: 'matrix',
      actor: { type: 'user', userId: ownerId, session: { id: newId(), createdAt: now, lastSeenAt: now } },
      org: { orgId, role: 'owner', roleLabel: 'owner', permissions: PermissionSet.of(ALL_PERMISSIONS), projectIds: null },
      audited: [],
    };
    const file = await this.h.built.services.files.upload(ctx, projectId, {
      declaredLength: null,
      file: async () => ({ fileName: `matrix-${unique()}.txt`, declaredType: 'text/plain', stream: Readable.from([Buffer.from('matrix fixture')]) }),
      end: async () => undefined,
    });
    return file.id;
  }

  /** An inbound webhook source of `orgId`, its secret sealed the way the service seals it. */
  async inboundSource(orgId: string, createdBy: string): Promise<string> {
    const id = newId();
    const sealer = this.h.built.services.sealer;
    await this.h.t.db.withTenant({ orgId, projectIds: null }, async (tx) => {
      const sealed = await sealer.seal(tx, { scope: orgId, table: 'inbound_sources', column: 'secret_sealed', row: id }, newWebhookSecret());
      await exec(tx, sql`insert into inbound_sources (org_id, id, provider, name, secret_sealed, created_by, created_at)
                         values (${orgId}, ${id}, 'stripe', ${`matrix-${unique()}`}, ${sealed}, ${createdBy}, now())`);
    });
    return id;
  }

  /** An integration credential of `orgId`, its value sealed as the service seals it. */
  async credential(orgId: string, createdBy: string): Promise<string> {
    const id = newId();
    const sealer = this.h.built.services.sealer;
    await this.h.t.db.withTenant({ orgId, projectIds: null }, async (tx) => {
      const sealed = await sealer.seal(tx, { scope: orgId, table: 'integration_credentials', column: 'secret_sealed', row: id }, `matrix-${randomToken(16)}`);
      await exec(tx, sql`insert into integration_credentials (org_id, id, name, kind, secret_sealed, created_by, created_at, updated_at)
                         values (${orgId}, ${id}, ${`matrix-${unique()}`}, 'api_token', ${sealed}, ${createdBy}, now(), now())`);
      await exec(tx, sql`insert into integration_credential_rotations (org_id, credential_id, version, event, at, by_user)
                         values (${orgId}, ${id}, 1, 'created', now(), ${createdBy})`);
    });
    return id;
  }

  /**
   * A finished export of `orgId` (the row only: asking for a link needs it done, and a download
   * with no token is refused before any file is read). Its key is sealed as the service would.
   */
  async orgExport(orgId: string, requestedBy: string): Promise<string> {
    const id = newId();
    const sealer = this.h.built.services.sealer;
    await this.h.t.db.withTenant({ orgId, projectIds: null }, async (tx) => {
      const sealed = await sealer.seal(tx, { scope: orgId, table: 'org_exports', column: 'key_sealed', row: id }, randomToken(32));
      await exec(tx, sql`insert into org_exports (org_id, id, requested_by, state, created_at, finished_at, expires_at, key_sealed)
                         values (${orgId}, ${id}, ${requestedBy}, 'done', now(), now(), now() + interval '7 days', ${sealed})`);
    });
    return id;
  }

  /** An OIDC connection of `orgId` at `issuer`, its secret sealed as the service would. */
  async ssoConnection(orgId: string, createdBy: string, issuer: string): Promise<string> {
    const id = newId();
    const sealer = this.h.built.services.sealer;
    await this.h.t.db.withTenant({ orgId, projectIds: null }, async (tx) => {
      const sealed = await sealer.seal(tx, { scope: orgId, table: 'sso_connections', column: 'secret_sealed', row: id }, 'matrix-secret');
      await exec(tx, sql`insert into sso_connections (org_id, id, kind, name, enabled, settings, secret_sealed, created_by, created_at, updated_at)
                         values (${orgId}, ${id}, 'oidc', ${`matrix-${unique()}`}, true, ${JSON.stringify({ issuer, clientId: 'matrix', scopes: ['openid'] })}::jsonb,
                                 ${sealed}, ${createdBy}, now(), now())`);
    });
    return id;
  }

  /** A pending "test connection" run of `connectionId`, started by `startedBy` (only they read it). */
  async ssoTest(orgId: string, connectionId: string, startedBy: string): Promise<string> {
    const id = newId();
    const now = this.h.clock.now();
    await this.h.t.db.withTenant({ orgId, projectIds: null }, (tx) =>
      exec(tx, sql`insert into sso_tests (org_id, id, connection_id, started_by, created_at, expires_at)
                   values (${orgId}, ${id}, ${connectionId}, ${startedBy}, ${now.toISOString()}, ${new Date(now.getTime() + 600_000).toISOString()})`),
    );
    return id;
  }

  /** An enabled SAML connection of `orgId` trusting `certPem`, with its ACS route entry, as the service writes them. */
  async samlConnection(orgId: string, createdBy: string, certPem: string): Promise<string> {
    const id = newId();
    const settings = { idpEntityId: 'https://idp.matrix.test', ssoUrl: 'https://idp.matrix.test/sso', certificates: [certPem], allowIdpInitiated: false, requireSignedResponse: true };
    await this.h.t.db.withTenant({ orgId, projectIds: null }, async (tx) => {
      await exec(tx, sql`insert into sso_connections (org_id, id, kind, name, enabled, settings, created_by, created_at, updated_at)
                         values (${orgId}, ${id}, 'saml', ${`matrix-${unique()}`}, true, ${JSON.stringify(settings)}::jsonb, ${createdBy}, now(), now())`);
      await exec(tx, sql`insert into saml_acs_routes (connection_id, org_id) values (${id}, ${orgId})`);
    });
    return id;
  }

  /**
   * A pending domain claim whose TXT record `zone` (the loopback DNS server the app asks)
   * publishes, so verifying it succeeds for whoever may.
   */
  async domainClaim(orgId: string, createdBy: string, zone: LoopbackDns['zone']): Promise<string> {
    const id = newId();
    const domain = `matrix-${unique()}.example`;
    const value = `palisade-verification=${randomToken(24)}`;
    await this.h.t.db.withTenant({ orgId, projectIds: null }, (tx) =>
      exec(tx, sql`insert into org_domains (org_id, id, domain, record_value, created_by, created_at)
                   values (${orgId}, ${id}, ${domain}, ${value}, ${createdBy}, now())`),
    );
    zone.set(`_palisade-verification.${domain}`, { txt: [[value]] });
    return id;
  }

  /** A live session of `userId` other than the one making the request. */
  async session(userId: string): Promise<string> {
    const s = await this.h.t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
      this.h.built.services.sessions.issue(tx, userId, systemContext('matrix'), { proof: { mfaVerified: false, steppedUpAt: this.h.clock.now() } }),
    );
    return s.id;
  }

  /** A real passkey registered through the service with a software authenticator. */
  async registerPasskey(email: string): Promise<SoftAuthenticator> {
    const ctx = systemContext('matrix');
    const userId = this.userId(email);
    const auth = new SoftAuthenticator(new URL(ORIGIN).hostname, ORIGIN);
    const { ceremonyToken, options } = await this.h.built.services.passkeys.registrationOptions(ctx, userId);
    await this.h.built.services.passkeys.register(ctx, userId, { ceremonyToken, name: 'matrix', response: auth.create(options) as never });
    return auth;
  }

  /** Removes every passkey of `email` and recomputes its MFA flag, whatever a case did. */
  async clearPasskeys(email: string): Promise<void> {
    const userId = this.userId(email);
    await this.h.t.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
      await exec(tx, sql`delete from passkeys where user_id = ${userId}`);
      await exec(tx, sql`update users set mfa_enabled = exists (select 1 from totp_credentials where user_id = ${userId} and confirmed_at is not null) where id = ${userId}`);
    });
  }

  /** A passkey row of `userId` (key material is irrelevant to who may rename or remove it). */
  async passkey(userId: string): Promise<string> {
    const id = newId();
    await this.h.t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
      exec(tx, sql`insert into passkeys (id, user_id, credential_id, public_key, name, created_at)
                   values (${id}, ${userId}, ${randomToken(32)}, ${Buffer.alloc(77, 1)}, 'matrix key', now())`),
    );
    return id;
  }

  /** Turns MFA on for `email` (an authenticator app, confirmed) the way the routes do; returns its secret and recovery codes. */
  async enrollMfa(email: string): Promise<{ secret: string; recoveryCodes: string[] }> {
    const mfa = this.h.built.services.mfa;
    const userId = this.userId(email);
    const ctx = systemContext('matrix');
    const { secret } = await mfa.enrollTotp(ctx, userId);
    const { recoveryCodes } = await mfa.confirmTotp(ctx, userId, totpCodeAt(secret, this.h.clock.now()));
    return { secret, recoveryCodes };
  }

  /** Turns MFA off again, whatever the case did, so that later cases see the demo identity unchanged. */
  async clearMfa(email: string): Promise<void> {
    await this.h.built.services.mfa.disable(systemContext('matrix'), this.userId(email));
  }

  /**
   * An invitation addressed to `email` from a throwaway org (so that accepting it changes no
   * membership the rest of the matrix relies on). Returns the token.
   */
  async invitationFromThrowawayOrg(email: string): Promise<string> {
    const orgId = newId();
    const owner = newId();
    const slug = `matrix-${unique()}`;
    await this.h.t.db.withTenant({ orgId, projectIds: null }, async (tx) => {
      await (await insertUserSql(this.h.built.services.sealer, tx, owner, { email: `owner-${slug}@fixtures.test`, name: 'matrix owner' })).execute(tx);
      await insertOrg({ audit: this.h.built.services.audit }, tx, systemContext('matrix'), { id: orgId, slug, name: slug }, owner);
    });
    return (await this.invitation(orgId, owner, email)).token;
  }

  /**
   * An API key created by `userId` through the service (its rules apply: scopes within what the
   * creator holds), carrying every permission of its kind that the creator holds.
   */
  async apiKey(orgId: string, userId: string, opts: { kind: 'secret' | 'publishable'; projectId?: string }): Promise<{ id: string; token: string }> {
    const standing = await resolveAccess(this.h.t.db, orgId, userId);
    if (!standing) throw new Error(`${userId} is not a member of ${orgId}`);
    const now = this.h.clock.now();
    const ctx: RequestContext = {
      ...systemContext('matrix'),
      actor: { type: 'user', userId, session: { id: newId(), createdAt: now, lastSeenAt: now } },
      org: standing.access,
    };
    const ceiling = opts.kind === 'publishable' ? BROWSER_SAFE_PERMISSIONS : opts.projectId ? PROJECT_KEY_PERMISSIONS : API_KEY_PERMISSIONS;
    const permissions = ceiling.filter((p) => standing.access.permissions.has(p));
    const { key, token } = await this.h.built.services.apiKeys.create(ctx, { name: `matrix-${unique()}`, kind: opts.kind, permissions, projectId: opts.projectId ?? null });
    return { id: key.id, token };
  }

  /** Makes `token` the key credential `credential` of `email` (a key written before a later rule, say). */
  useKeyToken(credential: KeyCredential, email: string, token: string): void {
    this.keyTokens.set(`${credential}|${email}`, token);
  }

  /** The Bearer token of a key credential of the matrix (cached: one key per identity and credential). */
  async keyToken(credential: KeyCredential, email: string, own: OrgFixture, other: OrgFixture): Promise<string> {
    const cacheKey = `${credential}|${email}`;
    const cached = this.keyTokens.get(cacheKey);
    if (cached) return cached;
    const userId = this.userId(email);
    let token: string;
    switch (credential) {
      case 'secret_key':
        token = (await this.apiKey(own.id, userId, { kind: 'secret' })).token;
        break;
      case 'publishable_key':
        token = (await this.apiKey(own.id, userId, { kind: 'publishable' })).token;
        break;
      case 'project_key':
        token = (await this.apiKey(own.id, userId, { kind: 'secret', projectId: own.assignedProject })).token;
        break;
      case 'revoked_key': {
        const k = await this.apiKey(own.id, userId, { kind: 'secret' });
        await this.h.t.owner.query('update api_keys set revoked_at = now() where id = $1', [k.id]);
        token = k.token;
        break;
      }
      case 'expired_key': {
        const k = await this.apiKey(own.id, userId, { kind: 'secret' });
        await this.h.t.owner.query('update api_keys set expires_at = $2 where id = $1', [k.id, new Date(this.h.clock.now().getTime() - 60_000).toISOString()]);
        token = k.token;
        break;
      }
      case 'other_org_key':
        token = (await this.apiKey(other.id, other.ownerId, { kind: 'secret' })).token;
        break;
    }
    this.keyTokens.set(cacheKey, token);
    return token;
  }

  /** A webhook endpoint of `orgId` (secret sealed as the service seals it) with one finished delivery. */
  async webhookEndpoint(orgId: string, createdBy: string): Promise<{ endpointId: string; deliveryId: string }> {
    const endpointId = newId();
    const deliveryId = newId();
    const sealer = this.h.built.services.sealer;
    const at = this.h.clock.now().toISOString();
    await this.h.t.db.withTenant({ orgId, projectIds: null }, async (tx) => {
      const sealed = await sealer.seal(tx, { scope: orgId, table: 'webhook_endpoints', column: 'secret_sealed', row: endpointId }, `whsec_${randomToken(32)}`);
      await exec(tx, sql`insert into webhook_endpoints (org_id, id, url, events, secret_sealed, created_by, created_at, updated_at)
                         values (${orgId}, ${endpointId}, 'https://hooks.example.com/matrix', ${['*']}, ${sealed}, ${createdBy}, ${at}, ${at})`);
      await exec(tx, sql`insert into webhook_deliveries (org_id, id, endpoint_id, message_id, event_type, payload, status, attempts, created_at, completed_at)
                         values (${orgId}, ${deliveryId}, ${endpointId}, ${`msg_${unique()}`}, 'project.created', '{}', 'succeeded', 1, ${at}, ${at})`);
    });
    return { endpointId, deliveryId };
  }

  /**
   * An HTTPS audit stream of `orgId` (secret sealed as the service seals it). Its receiver is a
   * documentation address (192.0.2.0/24), which the transport refuses at once: a test event
   * answers without waiting on the network.
   */
  async auditStream(orgId: string, createdBy: string): Promise<string> {
    const id = newId();
    const at = this.h.clock.now().toISOString();
    await this.h.t.db.withTenant({ orgId, projectIds: null }, async (tx) => {
      const sealed = await this.h.built.services.sealer.seal(tx, { scope: orgId, table: 'audit_streams', column: 'secret_sealed', row: id }, newWebhookSecret());
      await exec(tx, sql`insert into audit_streams (org_id, id, kind, url, secret_sealed, cursor_seq, created_by, created_at, updated_at)
                         values (${orgId}, ${id}, 'https', 'https://192.0.2.10/matrix', ${sealed}, 0, ${createdBy}, ${at}, ${at})`);
    });
    return id;
  }

  /** The pipeline's `authz.denied` audit events of the given orgs, by request id. */
  async deniedEvents(orgIds: readonly string[]): Promise<Map<string, { reason: string; route: string }>> {
    const out = new Map<string, { reason: string; route: string }>();
    const list = await auditRows(this.h, `where org_id = any($1) and action = 'authz.denied'`, [orgIds]);
    for (const e of list) out.set(e.request_id, { reason: String(e.details.reason), route: String(e.details.route) });
    return out;
  }

  /** A session cookie header whose session has been revoked (one per identity: revoked stays revoked, as the key credentials' tokens are kept). */
  async revokedCookie(email: string): Promise<string> {
    const kept = this.revokedCookies.get(email);
    if (kept) return kept;
    const cookie = await this.h.cookieFor(email);
    const secret = cookie.slice(cookie.indexOf('=') + 1).split('.')[0] ?? '';
    const n = await this.h.t.db.withSystem('matrix: revoke a session', (tx) =>
      exec(tx, sql`update sessions set revoked_at = now(), revoked_reason = 'matrix' where token_hash = ${sha256Hex(secret)}`),
    );
    if (n !== 1) throw new Error('could not revoke the matrix session');
    this.revokedCookies.set(email, cookie);
    return cookie;
  }
}
