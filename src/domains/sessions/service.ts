import { sql } from 'kysely';
import { hmacSha256, newId, randomToken, safeEqual, SealedValueError, sha256Hex, type FieldRef } from '../../crypto/index.js';
import type { Clock } from '../../kernel/clock.js';
import type { RequestContext, SessionInfo, UserActor } from '../../kernel/context.js';
import { AppError } from '../../kernel/errors.js';
import { exec, one, rows, type BoundColumns, type Database, type Tx } from '../../db/database.js';
import { isUuid } from '../../kernel/ids.js';
import { standingFrom, type MembershipRow, type OrgPolicy, type Standing } from '../tenancy/index.js';
import type { SessionView } from './responses.js';
import type { SignInMethod } from './sign-in.js';
import type { Sealer } from '../keys/sealer.js';
import type { SessionTouches } from './touches.js';

/**
 * Server-side sessions. The cookie carries `<secret>.<hmac>`: the HMAC is checked before any
 * lookup, the store keeps only SHA-256 of the secret, and every request re-reads the row
 * (revocation is immediate). Sliding idle expiry writes last_seen at most once per
 * `touchIntervalSeconds`, not on every request.
 */
export interface SessionDeps {
  db: Database;
  clock: Clock;
  /** Seals the address and user agent a session was opened from (system scope `sessions`). */
  sealer: Sealer;
  secret: Buffer;
  idleSeconds: number;
  absoluteSeconds: number;
  touchIntervalSeconds: number;
  /** Where due touches of last_seen_at go (touches.ts): written behind the request. */
  touches: SessionTouches;
}

export type { SessionView };

export interface Verified {
  actor: UserActor;
  /** Set when the session was rotated on this request: the reply must carry the new cookie. */
  rotatedCookie: string | null;
  /** The user's standing in the org verification was asked about: null when not a member. */
  standing?: Standing | null;
}

export interface SessionRow {
  id: string;
  user_id: string;
  created_at: Date;
  last_seen_at: Date;
  absolute_expires_at: Date;
  revoked_at: Date | null;
  rotate_pending: boolean;
  longest_idle_seconds: number;
  epoch: number;
  user_epoch?: number;
  ip: string;
  user_agent: string;
  client_sealed?: string | null;
  mfa_enabled?: boolean;
  mfa_verified: boolean;
  stepped_up_at: Date | null;
  auth_method?: SignInMethod | null;
  sso_org_id?: string | null;
  sso_connection_id?: string | null;
  break_glass_org_id?: string | null;
}

/** How the session was proven: carried over by rotation, set at login and by step-up. */
export interface SessionProof {
  mfaVerified: boolean;
  steppedUpAt: Date | null;
}

/** A new session's cookie value (shown once, to the client) and its id. */
export interface IssuedSession {
  cookie: string;
  id: string;
}

export interface IssueOptions {
  /** The session epoch the credential was checked under (see insert); absent: the current one. */
  epoch?: number;
  /** How the session was proven; absent: neither MFA-verified nor stepped up. */
  proof?: SessionProof;
  /**
   * The session is proven by a first factor alone (a password, a mailed link, a social or SSO
   * sign-in without the IdP's MFA): refused (invalid_credentials) when the account has a second
   * factor by now. The sign-in looked before its own check; a factor confirmed in between (its
   * row lock is waited for here) must not get a session without it (review 2026-12-05 F2, and
   * 2026-12-06 for the other first factors).
   */
  firstFactorOnly?: boolean;
  /** The method that proved the sign-in (sessions.auth_method); a rotation keeps the row's. */
  method?: SignInMethod;
  /** An SSO sign-in: the org and connection whose identity provider proved it. */
  sso?: { orgId: string; connectionId: string };
  /** A break-glass session of this org (sessions.break_glass_org_id); a rotation keeps the row's. */
  breakGlassOrgId?: string;
  /** A shorter lifetime than the deployment's (break-glass); a rotation keeps the row's expiry. */
  absoluteSeconds?: number;
}

const SECRET_RE = /^[A-Za-z0-9_-]{43}$/;

/** Where a session's client address and user agent are sealed: the system scope `sessions`, bound to the session. */
const clientRef = (sessionId: string): FieldRef => ({ scope: 'sessions', table: 'sessions', column: 'client_sealed', row: sessionId });

interface SessionClient {
  ip: string;
  userAgent: string;
}

/** A session's client, opened; a value that no longer opens (a tampered row) shows as unknown rather than failing the list. */
async function openClient(open: (ref: FieldRef, sealed: string) => Promise<string>, id: string, sealed: string): Promise<SessionClient> {
  try {
    return JSON.parse(await open(clientRef(id), sealed)) as SessionClient;
  } catch (err) {
    if (err instanceof SealedValueError) return { ip: '', userAgent: '' };
    throw err;
  }
}

export function createSessionService(deps: SessionDeps) {
  const sign = (secret: string) => hmacSha256(deps.secret, `palisade-session:${secret}`).toString('base64url');

  /** How long after its last activity a session's touch is due: an org's idle limit may make it sooner. */
  const touchDueSeconds = (orgIdleSeconds: number | null): number =>
    Math.min(deps.touchIntervalSeconds, deps.idleSeconds, orgIdleSeconds ? orgIdleSeconds / 4 : Infinity);

  function parseCookie(value: string | undefined): string | null {
    if (!value || value.length !== 87 || value[43] !== '.') return null;
    const secret = value.slice(0, 43);
    const sig = value.slice(44);
    if (!SECRET_RE.test(secret) || !safeEqual(sig, sign(secret))) return null;
    return secret;
  }

  /**
   * Inserts a session carrying the user's session epoch: `epoch` when the caller read it
   * before checking a credential (login), else the current one. A session whose epoch is
   * stale (a reset or revocation happened meanwhile) is never valid. `from` is the row a
   * rotation replaces: its lifetime and proof carry over unless `proof` says otherwise.
   */
  async function insert(tx: Tx, userId: string, ctx: RequestContext, opts: IssueOptions & { from?: SessionRow }): Promise<IssuedSession> {
    const { from, epoch, proof, firstFactorOnly } = opts;
    const method = opts.method ?? from?.auth_method ?? null;
    const sso = opts.sso ?? (from?.sso_org_id && from.sso_connection_id ? { orgId: from.sso_org_id, connectionId: from.sso_connection_id } : null);
    const secret = randomToken(32);
    const id = newId();
    const now = deps.clock.now();
    const created = from?.created_at ?? now;
    const absolute = from?.absolute_expires_at ?? new Date(now.getTime() + (opts.absoluteSeconds ?? deps.absoluteSeconds) * 1000);
    const breakGlassOrgId = opts.breakGlassOrgId ?? from?.break_glass_org_id ?? null;
    const longestIdle = from?.longest_idle_seconds ?? 0;
    const mfaVerified = proof?.mfaVerified ?? from?.mfa_verified ?? false;
    const steppedUpAt = proof ? proof.steppedUpAt : (from?.stepped_up_at ?? null);
    if (epoch !== undefined || firstFactorOnly) {
      // The credential was checked against this epoch: a reset or revocation since then wins.
      const current = await one<{ session_epoch: number; mfa_enabled: boolean }>(tx, sql`select session_epoch, mfa_enabled from users where id = ${userId} for share`);
      if (!current || (epoch !== undefined && current.session_epoch !== epoch)) throw new AppError('invalid_credentials');
      if (firstFactorOnly && current.mfa_enabled) throw new AppError('invalid_credentials');
    }
    const client = await deps.sealer.seal(tx, clientRef(id), JSON.stringify({ ip: ctx.ip, userAgent: ctx.userAgent } satisfies SessionClient));
    await exec(
      tx,
      sql`insert into sessions (id, token_hash, user_id, created_at, last_seen_at, absolute_expires_at, longest_idle_seconds, ip, user_agent, client_sealed, epoch,
                                mfa_verified, stepped_up_at, auth_method, sso_org_id, sso_connection_id, break_glass_org_id)
          values (${id}, ${sha256Hex(secret)}, ${userId}, ${created.toISOString()}, ${now.toISOString()},
                  ${absolute.toISOString()}, ${longestIdle}, '', '', ${client},
                  coalesce(${epoch ?? from?.epoch ?? null}::int, (select session_epoch from users where id = ${userId})),
                  ${mfaVerified}, ${steppedUpAt?.toISOString() ?? null}, ${method}, ${sso?.orgId ?? null}, ${sso?.connectionId ?? null}, ${breakGlassOrgId})`);
    return { cookie: `${secret}.${sign(secret)}`, id };
  }

  return {
    absoluteSeconds: deps.absoluteSeconds,

    /**
     * A brand-new session id: never reuses one the client brought. Sign-ins go through the
     * sign-in service (sign-in.ts), which decides the proof and audits; tests and benches call it
     * directly.
     */
    issue: (tx: Tx, userId: string, ctx: RequestContext, opts: IssueOptions = {}): Promise<IssuedSession> => insert(tx, userId, ctx, opts),

    /**
     * With `orgId`, the same statement also reads the user's membership there (an org-scoped
     * request pays one round trip for both); the org's session policy is then checked too.
     */
    async verify(cookieValue: string | undefined, ctx: RequestContext, orgId?: string): Promise<Verified | null> {
      const secret = parseCookie(cookieValue);
      if (!secret) return null;
      const now = deps.clock.now();
      const sessionSql = sql`s.id, s.user_id, s.created_at, s.last_seen_at, s.absolute_expires_at, s.revoked_at,
                     s.rotate_pending, s.longest_idle_seconds, s.ip, s.user_agent, s.epoch, u.session_epoch as user_epoch,
                     u.mfa_enabled, s.mfa_verified, s.stepped_up_at`;
      const tokenHash = sha256Hex(secret);
      // The common case is one read; only a rotation or a due touch writes.
      let s: (SessionRow & Partial<MembershipRow>) | undefined;
      if (orgId !== undefined) {
        if (!isUuid(orgId)) return null;
        // As the database spells it, in the statement and in the cache's tags (auth-cache.ts).
        orgId = orgId.toLowerCase();
        // All literals (a hex digest and a checked uuid): on PostgreSQL it shares one message with
        // BEGIN, and the binding it sets (this user, their project scope) serves the handler.
        // The statement is migration 006's palisade_session_in_org (a plan cached per connection).
        s = await deps.db.authenticateInOrg(
          orgId,
          sql<SessionRow & Partial<MembershipRow> & BoundColumns>`select * from palisade_session_in_org(${sql.lit(tokenHash)}, ${sql.lit(orgId)}::uuid)`,
          // What the row depends on (migration 040 announces each change): it may be served from the cache.
          // A session asking about an org it is not a member of is refused: not worth a cache entry
          // (made-up org ids would only crowd out real ones).
          (row) => (row.role ? [`s:${row.id}`, `u:${row.user_id}`, `m:${orgId}:${row.user_id}`, `o:${orgId}`] : null),
          // Touches announce nothing (migration 042), so a cached row's last_seen_at may be older
          // than the database's: the session looks idler than it is, never less idle (its
          // longest_idle_seconds lags too, but any gap recorded since it was read is at most the
          // gap from the row's own last_seen_at to now). It is used only while that gap decides
          // nothing: from the point where a touch is due (and every idle limit is at least that
          // far away: the deployment's is 4 touch intervals or more, an org's 4 of its touch
          // intervals), the row is read again, so a refusal or a touch always rests on the
          // database's clock. Judged by the row's own last_seen_at, never by this process's noted
          // touch: a note makes the row look recent without carrying the longest gap the database
          // recorded meanwhile (attacker review: an org's idle refusal was served past that way).
          // The gap is only as right as the clocks of the instances that wrote last_seen_at: one
          // running ahead writes a time in this one's future, which would look fresh for as long
          // as the skew (second review). Such a row is not used, and no row longer than that
          // interval after it was read, by this process's monotonic clock.
          (row, ageMs) => {
            const dueMs = touchDueSeconds(row.session_idle_seconds ?? null) * 1000;
            const gapMs = now.getTime() - row.last_seen_at.getTime();
            return ageMs < dueMs && gapMs >= 0 && gapMs < dueMs;
          },
        );
      } else {
        s = await deps.db.readGlobal('session verification', (db) =>
          one<SessionRow>(db, sql`select ${sessionSql} from sessions s join users u on u.id = s.user_id where s.token_hash = ${sql.lit(tokenHash)}`),
        );
      }
      if (!s || s.revoked_at || s.epoch !== s.user_epoch) return null;
      if (now >= s.absolute_expires_at) return null;
      // This process's own touch may not have reached the row yet (touches.ts).
      const noted = deps.touches.noted(s.id);
      const lastSeenAt = noted && noted.at > s.last_seen_at ? noted.at : s.last_seen_at;
      if (now.getTime() - lastSeenAt.getTime() > deps.idleSeconds * 1000) return null;
      // Kept on the row (and carried over by rotation) so that touching last_seen_at cannot
      // revive a session an org's shorter idle limit has already expired.
      const gapSeconds = Math.max(0, Math.ceil((now.getTime() - lastSeenAt.getTime()) / 1000));
      const longestIdleSeconds = Math.max(s.longest_idle_seconds, noted?.gapSeconds ?? 0, gapSeconds);
      const proof = { mfaVerified: s.mfa_verified, steppedUpAt: s.stepped_up_at, mfaEnabled: s.mfa_enabled ?? false };
      const session: SessionInfo = { id: s.id, createdAt: s.created_at, lastSeenAt, longestIdleSeconds, ...proof };
      const actor = (info: SessionInfo): UserActor => ({ type: 'user', userId: s.user_id, session: info });
      const standing = orgId === undefined ? undefined : s.role ? standingFrom(orgId, s as MembershipRow) : null;
      if (s.rotate_pending) {
        // Privileges changed since this id was issued: swap it for a fresh one. Only the
        // request that wins the update rotates; a concurrent one proceeds on the old id.
        return deps.db.withSystem('session rotation', async (tx) => {
          const won = await exec(
            tx,
            sql`update sessions set revoked_at = ${now.toISOString()}, revoked_reason = 'rotated'
                where id = ${s.id} and revoked_at is null and rotate_pending`,
          );
          if (won !== 1) return { actor: actor(session), rotatedCookie: null, standing };
          // The read path does not carry how the session was proven; its replacement keeps it.
          const how = await one<Pick<SessionRow, 'auth_method' | 'sso_org_id' | 'sso_connection_id' | 'break_glass_org_id'>>(
            tx, sql`select auth_method, sso_org_id, sso_connection_id, break_glass_org_id from sessions where id = ${s.id}`);
          const fresh = await insert(tx, s.user_id, ctx, { from: { ...s, ...how, longest_idle_seconds: longestIdleSeconds } });
          return { actor: actor({ id: fresh.id, createdAt: s.created_at, lastSeenAt: now, longestIdleSeconds, ...proof }), rotatedCookie: fresh.cookie, standing };
        });
      }
      if (now.getTime() - lastSeenAt.getTime() >= deps.touchIntervalSeconds * 1000) deps.touches.touch(s.id, now, gapSeconds);
      return { actor: actor(session), rotatedCookie: null, standing };
    },

    /** An org may demand shorter sessions than the deployment: checked when the org is addressed. */
    assertOrgPolicy(session: SessionInfo, policy: OrgPolicy): void {
      const now = deps.clock.now().getTime();
      const idleMs = Math.max(now - session.lastSeenAt.getTime(), (session.longestIdleSeconds ?? 0) * 1000);
      if (policy.sessionIdleSeconds && idleMs > policy.sessionIdleSeconds * 1000) {
        throw new AppError('session_expired');
      }
      if (policy.sessionAbsoluteSeconds && now - session.createdAt.getTime() > policy.sessionAbsoluteSeconds * 1000) {
        throw new AppError('session_expired');
      }
      if (policy.sessionsRevokedAt && session.createdAt.getTime() < policy.sessionsRevokedAt.getTime()) {
        throw new AppError('session_expired');
      }
      // Org MFA policy, past its grace period: no factor, enroll (the /api/me routes stay open);
      // a factor but a session not proven with it, prove it (step-up marks the session).
      if (policy.mfaEnforcedFrom && now >= policy.mfaEnforcedFrom.getTime() && !session.mfaVerified) {
        throw new AppError(session.mfaEnabled ? 'step_up_required' : 'mfa_enrollment_required');
      }
    },

    async revokeById(tx: Tx, userId: string, sessionId: string, reason: string): Promise<boolean> {
      const n = await exec(
        tx,
        sql`update sessions set revoked_at = ${deps.clock.now().toISOString()}, revoked_reason = ${reason}
            where id = ${sessionId} and user_id = ${userId} and revoked_at is null`,
      );
      return n === 1;
    },

    /**
     * Ends every session of the user (but `keep`): revokes the rows and bumps the user's epoch,
     * so that a session being issued or rotated concurrently is born dead.
     */
    async revokeAll(tx: Tx, userId: string, reason: string, keep?: string): Promise<number> {
      const bumped = await one<{ session_epoch: number }>(
        tx,
        sql`update users set session_epoch = session_epoch + 1 where id = ${userId} returning session_epoch`,
      );
      if (keep && bumped) await exec(tx, sql`update sessions set epoch = ${bumped.session_epoch} where id = ${keep} and user_id = ${userId}`);
      return exec(
        tx,
        sql`update sessions set revoked_at = ${deps.clock.now().toISOString()}, revoked_reason = ${reason}
            where user_id = ${userId} and revoked_at is null and (${keep ?? null}::uuid is null or id <> ${keep ?? null}::uuid)`,
      );
    },

    /**
     * Keeps last_seen_at fresh enough for an org idle limit shorter than the deployment's: the
     * regular touch (once per touchIntervalSeconds) would let up to a minute of activity count
     * as idleness. Runs after assertOrgPolicy, so it never hides a gap that already expired.
     */
    touchForPolicy(session: SessionInfo, policy: OrgPolicy): void {
      if (!policy.sessionIdleSeconds) return;
      const gapMs = deps.clock.now().getTime() - session.lastSeenAt.getTime();
      const dueMs = touchDueSeconds(policy.sessionIdleSeconds) * 1000;
      // At or past the regular interval, verify() has already written it.
      if (gapMs < dueMs || gapMs >= deps.touchIntervalSeconds * 1000) return;
      deps.touches.touch(session.id, deps.clock.now(), Math.ceil(gapMs / 1000));
    },

    async countLive(tx: Tx, userId: string): Promise<number> {
      const r = await one<{ n: number }>(
        tx,
        sql`select count(*)::int as n from sessions s join users u on u.id = s.user_id
            where s.user_id = ${userId} and s.revoked_at is null and s.epoch = u.session_epoch
              and s.absolute_expires_at > ${deps.clock.now().toISOString()}`,
      );
      return r?.n ?? 0;
    },

    /** A fresh proof of identity on this session: a second factor (also marks it MFA-verified) or a password. */
    async recordStepUp(tx: Tx, sessionId: string, userId: string, withSecondFactor: boolean): Promise<void> {
      await exec(
        tx,
        // A password proof counts only while the account has no second factor: one racing the
        // enrollment's confirmation must not land after it (sign-in.ts factorAdded clears those).
        sql`update sessions set stepped_up_at = ${deps.clock.now().toISOString()}, mfa_verified = mfa_verified or ${withSecondFactor}
            where id = ${sessionId} and user_id = ${userId} and revoked_at is null
              and (${withSecondFactor} or not (select mfa_enabled from users where id = ${userId}))`,
      );
    },

    /**
     * Password step-ups of the user's sessions stop counting (a second factor was just added:
     * from now on only a factor is a step-up). Sessions proven with a factor keep theirs.
     */
    async voidPasswordStepUps(tx: Tx, userId: string): Promise<void> {
      await exec(tx, sql`update sessions set stepped_up_at = null where user_id = ${userId} and revoked_at is null and not mfa_verified`);
    },

    /** The account has no second factor left: no session of it counts as proven with one. */
    async unmarkSecondFactor(tx: Tx, userId: string): Promise<void> {
      await exec(tx, sql`update sessions set mfa_verified = false where user_id = ${userId} and mfa_verified`);
    },

    /** The user's privileges changed: each live session gets a new id on its next request. */
    async markRotate(tx: Tx, userId: string): Promise<void> {
      await exec(tx, sql`update sessions set rotate_pending = true where user_id = ${userId} and revoked_at is null`);
    },

    /** Revokes `current` and issues a replacement with the same absolute expiry (password change). */
    async rotate(tx: Tx, current: SessionInfo, userId: string, ctx: RequestContext): Promise<IssuedSession> {
      const row = await one<SessionRow>(tx, sql`select * from sessions where id = ${current.id} and user_id = ${userId} for update`);
      if (!row || row.revoked_at) throw new AppError('unauthenticated');
      await exec(tx, sql`update sessions set revoked_at = ${deps.clock.now().toISOString()}, revoked_reason = 'rotated' where id = ${row.id}`);
      // The gap this request saw (its touch may not be written yet: touches.ts) carries over too,
      // so that a rotation cannot clear what an org's shorter idle limit holds against the session.
      return insert(tx, userId, ctx, { from: { ...row, longest_idle_seconds: Math.max(row.longest_idle_seconds, current.longestIdleSeconds ?? 0) } });
    },

    async list(userId: string, currentId: string): Promise<SessionView[]> {
      const now = deps.clock.now();
      return deps.db.withSystem('list own sessions', async (tx) => {
        const list = await rows<SessionRow>(
          tx,
          sql`select * from sessions where user_id = ${userId} and revoked_at is null and absolute_expires_at > ${now.toISOString()}
              and last_seen_at > ${new Date(now.getTime() - deps.idleSeconds * 1000).toISOString()} order by last_seen_at desc`,
        );
        const open = deps.sealer.opener(tx);
        const views: SessionView[] = [];
        for (const s of list) {
          const client = s.client_sealed ? await openClient(open, s.id, s.client_sealed) : { ip: s.ip, userAgent: s.user_agent };
          views.push({
            id: s.id,
            createdAt: s.created_at.toISOString(),
            lastSeenAt: s.last_seen_at.toISOString(),
            expiresAt: s.absolute_expires_at.toISOString(),
            ...client,
            current: s.id === currentId,
          });
        }
        return views;
      });
    },
  };
}

export type SessionService = ReturnType<typeof createSessionService>;
