/**
 * An org ready for SSO enforcement: a verified domain (on record directly: its DNS proof is
 * domains.test.ts's subject), an enabled OIDC connection to the loopback IdP (through the API:
 * its discovery is real), and people of the domain with real passwords.
 */
import { newId } from '../../src/crypto/index.js';
import { hashPassword } from '../../src/domains/identity/index.js';
import { systemContext } from '../../src/kernel/context.js';
import { SYSTEM_ORG_ID } from '../../src/kernel/ids.js';
import type { TestApp } from './app.js';
import { call } from './client.js';
import type { LoopbackIdp } from './oidc.js';
import { freshOrg, PASSWORD, type TestUser } from './users.js';

export const ENFORCEMENT_CLIENT = { client_id: 'enforced', client_secret: 'canary-enforcement-secret-5be1d2' };

let hashed: Promise<string> | null = null;

export interface EnforceableOrg {
  orgId: string;
  domain: string;
  connectionId: string;
  /** The org's creator: an owner outside the domain (example.test), signed in with a stepped-up session. */
  ownerCookie: string;
  /** A fresh user of the domain with PASSWORD, a member of the org with `role` (none: no membership). */
  person(role?: 'owner' | 'admin' | 'member'): Promise<TestUser>;
  /** PUT /api/orgs/:orgId/sso/enforcement as the creator. */
  enforce(on: boolean): ReturnType<typeof call>;
}

export async function enforceableOrg(h: TestApp, idp: LoopbackIdp): Promise<EnforceableOrg> {
  const { orgId, owner, cookie: ownerCookie } = await freshOrg(h);
  const domain = `enf-${newId().slice(0, 8)}.example`;
  await h.t.owner.query(
    'insert into org_domains (org_id, id, domain, record_value, created_by, created_at, verified_at) values ($1, $2, $3, $4, $5, now(), now())',
    [orgId, newId(), domain, 'palisade-verification=test', owner.id],
  );
  await h.t.owner.query('insert into verified_domains (domain, org_id) values ($1, $2)', [domain, orgId]);
  const created = await call(h, 'POST', `/api/orgs/${orgId}/sso/connections`, {
    cookie: ownerCookie,
    payload: { kind: 'oidc', name: 'Corporate IdP', issuer: idp.issuer, clientId: ENFORCEMENT_CLIENT.client_id, clientSecret: ENFORCEMENT_CLIENT.client_secret, jitRole: 'member' },
  });
  if (created.statusCode !== 201) throw new Error(`connection: ${created.statusCode} ${created.body}`);
  const connectionId = created.json<{ id: string }>().id;
  const on = await call(h, 'PATCH', `/api/orgs/${orgId}/sso/connections/${connectionId}`, { cookie: ownerCookie, payload: { enabled: true } });
  if (on.statusCode !== 200) throw new Error(`enable: ${on.statusCode} ${on.body}`);
  return {
    orgId, domain, connectionId, ownerCookie,
    async person(role) {
      hashed ??= hashPassword(PASSWORD);
      const id = newId();
      const email = `p-${id.slice(0, 8)}@${domain}`;
      await h.insertUser({ id, email, name: 'Domain user', passwordHash: await hashed, verified: true });
      if (role) await h.t.owner.query('insert into memberships (org_id, user_id, role) values ($1, $2, $3)', [orgId, id, role]);
      return { id, email, password: PASSWORD };
    },
    enforce: (enforced) => call(h, 'PUT', `/api/orgs/${orgId}/sso/enforcement`, { cookie: ownerCookie, payload: { enforced } }),
  };
}

/** A session opened by the org's SSO, issued directly (the sign-in itself is the OIDC suite's subject). */
export async function ssoSessionFor(h: TestApp, org: EnforceableOrg, userId: string): Promise<string> {
  const s = await h.t.db.withTenant({ orgId: SYSTEM_ORG_ID }, (tx) =>
    h.built.services.sessions.issue(tx, userId, systemContext('test'), {
      method: 'sso', sso: { orgId: org.orgId, connectionId: org.connectionId }, proof: { mfaVerified: false, steppedUpAt: null },
    }),
  );
  return `${h.built.cookie.name}=${s.cookie}`;
}
