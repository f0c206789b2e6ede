import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';
import { userView } from '../identity/index.js';
import { orgView, permission } from '../tenancy/index.js';

/**
 * What the session routes answer (sign-in, your profile and sessions, step-up). The services'
 * view types are derived from these schemas (one definition); the reply is serialized through
 * them, so a column nobody named here (a session's token hash, its epoch) never leaves.
 */

/**
 * An org you belong to, with your role there and what it lets you do: the console decides what
 * to show from `permissions` and `projectIds`, which are what the server enforces per request.
 */
export const myOrg = z.object({
  id: uuid,
  slug: z.string(),
  name: z.string(),
  createdAt: timestamp,
  deletion: orgView.shape.deletion,
  role: z.string().meta({ description: 'Your role there: owner, admin, member, viewer, project_viewer or custom' }),
  roleLabel: z.string().meta({ description: 'The custom role\u2019s name for a custom role, else the role (as `role`)' }),
  permissions: z.array(permission).meta({
    description: 'Your effective permissions there, sorted: your role\u2019s, without the org-wide ones when you are ' +
      'restricted to projects. The org\u2019s admin IP allowlist and MFA requirement still apply per request',
  }),
  projectIds: z.array(uuid).nullable().meta({ description: 'Null when you reach every project; else the projects you are assigned to' }),
});
export type MyOrg = z.infer<typeof myOrg>;

/** Who is signed in: the answer of GET /api/me and of every completed sign-in. */
export const signedIn = z.object({
  user: userView,
  orgs: z.array(myOrg).meta({ description: 'By slug' }),
});

export const secondFactorMethod = z.enum(['totp', 'recoveryCode', 'passkey']);
export type SecondFactorMethod = z.infer<typeof secondFactorMethod>;

/** The password was right and the account has a second factor: no session yet. */
export const secondFactorPending = z.object({
  mfaRequired: z.literal(true),
  mfaToken: z.string().meta({
    description: 'The pending sign-in (single use, five minutes; not a session): send it to POST /api/auth/mfa/verify or /api/auth/mfa/passkey',
  }),
  methods: z.array(secondFactorMethod).meta({ description: 'The second factors the account can finish with' }),
});

/** A password sign-in: signed in (the session cookie is set), or a second factor is still needed. */
export const loginAnswer = z.union([signedIn, secondFactorPending]);

export const sessionView = z.object({
  id: uuid,
  createdAt: timestamp,
  lastSeenAt: timestamp,
  expiresAt: timestamp.meta({ description: 'The absolute expiry; idleness ends it sooner' }),
  ip: z.string(),
  userAgent: z.string(),
  current: z.boolean().meta({ description: 'The session this request came with' }),
});
export type SessionView = z.infer<typeof sessionView>;

export const sessionList = z.object({ sessions: z.array(sessionView).meta({ description: 'Live sessions, most recently seen first' }) });

export const steppedUp = z.object({
  steppedUpUntil: timestamp.meta({ description: 'Sensitive actions need no new proof until then' }),
});

export const otherSessionsRevoked = z.object({
  revoked: z.number().int().nonnegative().meta({ description: 'Sessions ended (every live one but the caller\u2019s)' }),
});

export const memberSignedOut = z.object({
  revoked: z.number().int().nonnegative().meta({
    description: 'Sessions ended outright (when this org is the member\u2019s only one), else their live sessions, which no longer reach this org',
  }),
});
