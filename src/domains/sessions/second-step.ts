import { SYSTEM_ORG_ID } from '../../kernel/ids.js';
import type { RequestContext } from '../../kernel/context.js';
import type { AuditWriter } from '../audit/index.js';
import type { ChallengeOrigin, MfaService } from '../identity/index.js';
import type { SecondFactorMethod } from './responses.js';

/**
 * The first step of a sign-in passed (a password, or an org's identity provider) and the account
 * has a second factor: no session yet, a single-use five-minute token for the second step
 * (POST /api/auth/mfa/verify or /api/auth/mfa/passkey), and the factors it can finish with.
 */
export async function pendingSecondStep(
  d: { mfa: MfaService; audit: AuditWriter },
  ctx: RequestContext,
  user: { id: string; sessionEpoch: number },
  origin: ChallengeOrigin = {},
): Promise<{ mfaRequired: true; mfaToken: string; methods: SecondFactorMethod[] }> {
  const mfaToken = await d.mfa.startChallenge(user.id, user.sessionEpoch, origin);
  const { sso, breakGlassOrgId } = origin;
  await d.audit.appendStandalone(SYSTEM_ORG_ID, ctx, {
    action: 'auth.login_second_factor_pending', target: { type: 'user', id: user.id }, actor: { type: 'user', id: user.id },
    ...(sso ? { details: { ssoOrgId: sso.orgId, ssoConnectionId: sso.connectionId } } : breakGlassOrgId ? { details: { breakGlassOrgId } } : {}),
  });
  const f = await d.mfa.status(user.id);
  const methods: SecondFactorMethod[] = [
    ...(f.totp ? ['totp' as const] : []),
    ...(f.recoveryCodesLeft > 0 ? ['recoveryCode' as const] : []),
    ...(f.passkeys > 0 ? ['passkey' as const] : []),
  ];
  return { mfaRequired: true, mfaToken, methods };
}
