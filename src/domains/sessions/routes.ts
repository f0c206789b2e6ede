import { sql } from 'kysely';
import { z } from 'zod';
import { defineRoute, type AnyRoute } from '../../http/route.js';
import { email, uuid } from '../../http/schemas.js';
import { userActorOf } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import { exec, one, type Database } from '../../db/database.js';
import type { Clock } from '../../kernel/clock.js';
import type { AuditWriter } from '../audit/index.js';
import type { IdentityService, MfaService } from '../identity/index.js';
import { assertCanActOnCredentials, bindingOf, requireOrg, type OrgService } from '../tenancy/index.js';
import type { SessionService } from './service.js';
import type { SignInService } from './sign-in.js';
import { clearSessionCookie, finishSignInOn, setSessionCookie, type CookieSettings } from './cookie.js';
import { loginAnswer, memberSignedOut, otherSessionsRevoked, sessionList, signedIn } from './responses.js';
import { pendingSecondStep } from './second-step.js';

// Bounded before hashing so that nobody makes argon2 chew a megabyte.
const password = z.string().min(1).max(1024);

export function sessionRoutes(d: {
  db: Database;
  clock: Clock;
  audit: AuditWriter;
  sessions: SessionService;
  signIn: SignInService;
  identity: IdentityService;
  mfa: MfaService;
  orgs: OrgService;
  cookie: CookieSettings;
  /** SSO enforcement: refuses a password sign-in for an address it covers, by domain, before the password is checked. */
  ssoGate: { assertLocalSignIn(email: string): Promise<void> };
}): AnyRoute[] {
  const tags = ['auth'];

  return [
    defineRoute({
      method: 'POST', url: '/api/auth/login', summary: 'Sign in with email and password', tags,
      auth: { mode: 'public', reason: 'signing in is how a session starts' }, permission: 'none',
      rateLimit: 'login', audit: { action: 'auth.login', or: ['auth.login_second_factor_pending'] },
      // The one email spelling (ASCII, lower case) of registration: SSO enforcement reads its domain
      // and the account lookup its address the same way (review: a dotted capital I once told them apart).
      schema: { body: z.strictObject({ email, password }), response: loginAnswer },
      // invalid_credentials also when a reset or revocation raced the password check (the epoch).
      // sso_required: the address is in a verified domain of an org that enforces SSO (break-glass
      // owners use POST /api/auth/break-glass).
      errors: ['invalid_credentials', 'email_unverified', 'sso_required'],
      handler: async ({ ctx, body, reply }) => {
        await d.ssoGate.assertLocalSignIn(body.email);
        const user = await d.identity.verifyCredentials(ctx, body.email, body.password);
        // Not a session: a five-minute, single-use token for POST /api/auth/mfa/verify.
        if (user.mfaEnabled) return pendingSecondStep(d, ctx, user);
        await finishSignInOn(reply, d, ctx, { userId: user.id, method: 'password', epoch: user.sessionEpoch });
        return { user: { id: user.id, email: user.email, name: user.name }, orgs: await d.orgs.listMine(user.id) };
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/auth/logout', summary: 'End this session', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.logout' },
      status: 204, schema: {}, errors: [],
      handler: async ({ ctx, reply }) => {
        const actor = userActorOf(ctx);
        await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
          await d.sessions.revokeById(tx, actor.userId, actor.session.id, 'logout');
          await d.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.logout', target: { type: 'session', id: actor.session.id } });
        });
        clearSessionCookie(reply, d.cookie);
      },
    }),
    defineRoute({
      method: 'GET', url: '/api/me', summary: 'Your profile and organizations', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { response: signedIn }, errors: [],
      handler: async ({ ctx }) => {
        const actor = userActorOf(ctx);
        return { user: await d.identity.getUser(actor.userId), orgs: await d.orgs.listMine(actor.userId) };
      },
    }),
    defineRoute({
      method: 'GET', url: '/api/me/sessions', summary: 'Your active sessions', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { none: 'read' },
      schema: { response: sessionList }, errors: [],
      handler: async ({ ctx }) => {
        const actor = userActorOf(ctx);
        return { sessions: await d.sessions.list(actor.userId, actor.session.id) };
      },
    }),
    defineRoute({
      method: 'DELETE', url: '/api/me/sessions/:sessionId', summary: 'Revoke one of your sessions', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.session_revoked' },
      status: 204, schema: { params: z.strictObject({ sessionId: uuid }) },
      errors: ['not_found'],
      handler: async ({ ctx, params, reply }) => {
        const actor = userActorOf(ctx);
        await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
          if (!(await d.sessions.revokeById(tx, actor.userId, params.sessionId, 'revoked_by_user'))) throw new AppError('not_found');
          await d.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.session_revoked', target: { type: 'session', id: params.sessionId } });
        });
        if (params.sessionId === actor.session.id) clearSessionCookie(reply, d.cookie);
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/me/sessions/revoke-others', summary: 'Sign out everywhere else: end every session of yours but this one', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.other_sessions_revoked' },
      schema: { response: otherSessionsRevoked }, errors: [],
      handler: async ({ ctx }) => {
        const actor = userActorOf(ctx);
        // One statement set, not one request per session: the epoch bump also kills a session
        // being issued or rotated meanwhile (revokeAll), which a list read first would miss.
        const revoked = await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, async (tx) => {
          const n = await d.sessions.revokeAll(tx, actor.userId, 'revoked_by_user', actor.session.id);
          await d.audit.append(tx, SYSTEM_ORG_ID, ctx, { action: 'auth.other_sessions_revoked', target: { type: 'user', id: actor.userId }, details: { sessions: n } });
          return n;
        });
        return { revoked };
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/me/password', summary: 'Change your password (ends your other sessions)', tags,
      auth: { mode: 'session' }, permission: 'self', rateLimit: 'authenticated', audit: { action: 'auth.password_changed' },
      status: 204, schema: { body: z.strictObject({ currentPassword: password, newPassword: password }) },
      example: () => ({ currentPassword: 'not-the-password', newPassword: 'a-new-long-passphrase-42' }),
      errors: ['invalid_credentials', 'weak_password'],
      handler: async ({ ctx, body, reply }) => {
        const actor = userActorOf(ctx);
        await d.identity.changePassword(ctx, actor.userId, actor.session.id, body.currentPassword, body.newPassword);
        const fresh = await d.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) => d.sessions.rotate(tx, actor.session, actor.userId, ctx));
        setSessionCookie(reply, d.cookie, fresh.cookie, d.sessions.absoluteSeconds);
      },
    }),
    defineRoute({
      method: 'POST', url: '/api/orgs/:orgId/members/:userId/sessions/revoke',
      summary: 'Sign a member out: their current sessions stop reaching this org (everywhere, when it is their only org)',
      tags: ['members'], auth: { mode: 'session' }, permission: 'sessions:revoke', rateLimit: 'authenticated',
      audit: { action: 'member.sessions_revoked' }, ownerRecovery: true,
      schema: { params: z.strictObject({ orgId: uuid, userId: uuid }), response: memberSignedOut },
      // privilege_escalation: the member is an owner, or holds permissions the caller lacks.
      // step_up_required: an owner outside the admin IP allowlist (ownerRecovery), or an org
      // requiring MFA of a session not proven with it; the pipeline answers both, and
      // problemCodesOf does not derive them yet.
      errors: ['privilege_escalation', 'step_up_required'],
      handler: async ({ ctx, params }) => {
        const org = requireOrg(ctx);
        if (!(await assertCanActOnCredentials(d.db, org, userActorOf(ctx).userId, params.userId, 'sign out'))) throw new AppError('not_found');
        // Sessions are global: end them outright only when this org is the member's only one, so
        // that no org can sign a user out of the others (read before, never inside, the write).
        const elsewhere = await d.db.withTenant({ orgId: null, userId: params.userId }, (own) =>
          one<{ n: number }>(own, sql`select count(*)::int as n from memberships where user_id = ${params.userId} and org_id <> ${org.orgId}`),
        );
        const revoked = await d.db.withTenant(bindingOf(ctx), async (tx) => {
          // Always: sessions created until now no longer reach this org.
          const member = await exec(tx, sql`update memberships set sessions_revoked_at = ${d.clock.now().toISOString()}
                             where org_id = ${org.orgId} and user_id = ${params.userId}`);
          if (member !== 1) throw new AppError('not_found');
          const n =
            (elsewhere?.n ?? 0) === 0
              ? await d.sessions.revokeAll(tx, params.userId, 'revoked_by_admin')
              : await d.sessions.countLive(tx, params.userId);
          await d.audit.append(tx, org.orgId, ctx, { action: 'member.sessions_revoked', target: { type: 'user', id: params.userId }, details: { sessions: n } });
          return n;
        });
        return { revoked };
      },
    }),
  ];
}
