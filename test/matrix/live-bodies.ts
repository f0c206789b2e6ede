/**
 * The matrix's live bodies (authz-matrix.test.ts): route-specific knowledge the declarations
 * cannot carry, kept apart so that the matrix itself stays readable in one sitting.
 */
import { systemContext as systemContextFor } from '../../src/kernel/context.js';
import { totpCodeAt } from '../../src/domains/identity/index.js';
import { ORIGIN } from '../support/app.js';
import { SoftAuthenticator } from '../support/authenticator.js';
import type { LoopbackIdp } from '../support/oidc.js';
import type { Fixtures } from './fixtures.js';

/** The caller's org of every case. */
export const OWN_ORG = 'acme';

export type Body = Record<string, unknown>;

/** What the cases need from the test's own setup: the identity provider it started. */
export const liveState: { idp?: LoopbackIdp } = {};

/**
 * Route-specific knowledge the declarations cannot carry. Each entry says why; the first test
 * fails when an entry names a route that is no longer in the table, so none goes stale.
 */
export interface LiveBody {
  why: string;
  fields(f: Fixtures, callerEmail: string, params: Readonly<Record<string, string>>): Promise<{ patch: Body; onSuccess?: () => void; after?: () => Promise<void> }>;
}

/**
 * What a deletion of `orgId` changes that later cases rely on, read now, and a function that puts
 * it back: the deletion schedule, the members' session cutoffs and the keys it revoked.
 */
async function orgDeletionUndo(f: Fixtures, orgId: string): Promise<() => Promise<void>> {
  const q = f.app.t.owner.query.bind(f.app.t.owner);
  const members = await q<{ user_id: string; sessions_revoked_at: Date | null }>('select user_id, sessions_revoked_at from memberships where org_id = $1', [orgId]);
  const live = (await q<{ id: string }>('select id from api_keys where org_id = $1 and revoked_at is null', [orgId])).map((k) => k.id);
  return async () => {
    await q('update organizations set deletion_requested_at = null, deletion_requested_by = null, purge_after = null where org_id = $1', [orgId]);
    for (const m of members) await q('update memberships set sessions_revoked_at = $3 where org_id = $1 and user_id = $2', [orgId, m.user_id, m.sessions_revoked_at]);
    await q('update api_keys set revoked_at = null, revoked_by = null where org_id = $1 and id = any($2::uuid[])', [orgId, live]);
  };
}

export const LIVE_BODIES: Record<string, LiveBody> = {
  'POST /api/orgs/:orgId/sso/connections': {
    why: 'adding a connection reads the issuer\u2019s discovery document: point it at the IdP on loopback (and stay under the per-org cap the :connectionId fixtures fill)',
    async fields(f) {
      const matrixIdp = liveState.idp;
      if (!matrixIdp) throw new Error('the matrix IdP is not running');
      await f.app.t.owner.query('delete from sso_connections');
      return { patch: { issuer: matrixIdp.issuer } };
    },
  },
  'POST /api/me/password': {
    why: 'the example carries a wrong current password (401 invalid_credentials); send the real one so the allowed case succeeds',
    async fields(f, email) {
      const next = `matrix-${Math.random().toString(36).slice(2)}-Long-Passphrase`;
      return { patch: { currentPassword: f.password(email), newPassword: next }, onSuccess: () => f.setPassword(email, next) };
    },
  },
  'POST /api/auth/step-up': {
    why: 'the example carries a wrong password (401 invalid_credentials); the demo identities have no second factor, so their password is the step-up',
    async fields(f, email) {
      return { patch: { password: f.password(email) } };
    },
  },
  'POST /api/me/mfa/totp/confirm': {
    why: 'confirming needs a pending enrollment and its current code; MFA is turned off again afterwards',
    async fields(f, email) {
      const mfa = f.app.built.services.mfa;
      const { secret } = await mfa.enrollTotp(systemContextFor('matrix'), f.userId(email));
      return { patch: { code: totpCodeAt(secret, f.app.clock.now()) }, after: () => f.clearMfa(email) };
    },
  },
  'POST /api/me/mfa/disable': {
    why: 'disabling needs MFA on and a fresh factor: the identity enrolls first and sends a recovery code; MFA is off again afterwards either way',
    async fields(f, email) {
      const { recoveryCodes } = await f.enrollMfa(email);
      return { patch: { code: undefined, recoveryCode: recoveryCodes[0] }, after: () => f.clearMfa(email) };
    },
  },
  'POST /api/me/mfa/recovery-codes': {
    why: 'new recovery codes need MFA on (409 otherwise): the identity enrolls first; MFA is off again afterwards',
    async fields(f, email) {
      await f.enrollMfa(email);
      return { patch: {}, after: () => f.clearMfa(email) };
    },
  },
  'POST /api/me/passkeys': {
    why: 'adding a passkey needs a live ceremony and an authenticator\u2019s attestation; the passkey is removed afterwards',
    async fields(f, email) {
      const ctx = systemContextFor('matrix');
      const auth = new SoftAuthenticator(new URL(ORIGIN).hostname, ORIGIN);
      const { ceremonyToken, options } = await f.app.built.services.passkeys.registrationOptions(ctx, f.userId(email));
      return { patch: { ceremonyToken, response: auth.create(options) }, after: () => f.clearPasskeys(email) };
    },
  },
  'POST /api/auth/step-up/passkey': {
    why: 'a passkey step-up needs a registered passkey and a live assertion; the passkey is removed afterwards',
    async fields(f, email) {
      const auth = await f.registerPasskey(email);
      const { ceremonyToken, options } = await f.app.built.services.passkeys.assertionOptions(systemContextFor('matrix'), 'step_up', f.userId(email));
      return { patch: { ceremonyToken, response: auth.get(options) }, after: () => f.clearPasskeys(email) };
    },
  },
  'PUT /api/orgs/:orgId/sso/enforcement': {
    why: 'the example turns enforcement off, a 409 where it is off already: the case starts with it on (no fixture user is in a verified domain, so nobody is affected), and off it stays',
    async fields(f) {
      await f.app.t.owner.query('insert into sso_enforcement (org_id, enforced_since) select org_id, now() from organizations on conflict (org_id) do update set enforced_since = now()');
      return { patch: { enforced: false }, after: async () => void (await f.app.t.owner.query('update sso_enforcement set enforced_since = null')) };
    },
  },
  'DELETE /api/me/social/:provider': {
    why: 'unlinking needs a linked identity (404 otherwise): the caller gets a Google one first',
    async fields(f, email) {
      await f.app.t.owner.query(
        "insert into social_identities (provider, issuer, subject, user_id, linked_at) values ('google', 'https://accounts.google.com', $1, $2, now()) on conflict do nothing",
        [`matrix-${f.userId(email)}`, f.userId(email)],
      );
      return { patch: {} };
    },
  },
  'DELETE /api/orgs/:orgId': {
    why: 'deleting needs the org\u2019s slug typed; a deletion signs every member out of the org and revokes its keys, which every later case needs: all of it is put back afterwards',
    async fields(f) {
      const org = f.org(OWN_ORG);
      const undo = await orgDeletionUndo(f, org.id);
      return { patch: { confirm: org.slug }, after: undo };
    },
  },
  'POST /api/orgs/:orgId/restore': {
    why: 'restoring needs an org scheduled for deletion (409 otherwise): the case starts with the caller\u2019s org scheduled, and it is not afterwards either way',
    async fields(f) {
      const org = f.org(OWN_ORG);
      const undo = await orgDeletionUndo(f, org.id);
      await f.app.t.owner.query(`update organizations set deletion_requested_at = now(), purge_after = now() + interval '30 days' where org_id = $1`, [org.id]);
      return { patch: {}, after: undo };
    },
  },
  'POST /api/orgs/:orgId/exports': {
    why: 'an org has one export in flight at a time (409 otherwise): the export the case asked for is removed afterwards', fields: async (f) => ({ patch: {}, after: async () => void (await f.app.t.owner.query(`delete from org_exports where org_id = $1 and state = 'queued'`, [f.org(OWN_ORG).id])) }),
  },
  'POST /api/orgs/:orgId/members/:userId/erase': {
    why: 'erasing needs the member\u2019s email address typed: the case\u2019s fresh member\u2019s, read from the database',
    fields: async (f, _caller, params) => ({ patch: { confirm: params.userId ? (await f.app.person(params.userId))?.email : undefined } }),
  },
  'POST /api/invitations/accept': {
    why: 'the example token is invalid (400 token_invalid); send a live invitation from a throwaway org',
    async fields(f, email) {
      return { patch: { token: await f.invitationFromThrowawayOrg(email) } };
    },
  },
};
