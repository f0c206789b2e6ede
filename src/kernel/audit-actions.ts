/**
 * The closed catalogue of audit actions. Routes declare one of them, services append one of
 * them, and the webhook event types are the subset marked `webhook`: adding an action here is
 * the only way to create one, and a typo is a compile error instead of an event nobody matches.
 */
interface ActionSpec {
  readonly description: string;
  /** Delivered to subscribed webhook endpoints (successful events only). */
  readonly webhook?: true;
}

export const AUDIT_ACTIONS = {
  'auth.registered': { description: 'An account was created (its address not yet proven)' },
  'auth.registration_duplicate': { description: 'A registration named an address that has an account (answered like any other; the owner is mailed)' },
  'auth.email_verification_requested': { description: 'A verification link was mailed' },
  'auth.email_verified': { description: 'An account proved its mailbox (the link and its password, or a password reset)' },
  'auth.email_verification_failed': { description: 'A verification was refused (wrong password or spent link)' },
  'auth.login': { description: 'A sign-in completed and a session was issued' },
  'auth.login_failed': { description: 'A sign-in was refused (wrong password, locked account, unknown or unverified address)' },
  'auth.login_second_factor_pending': { description: 'The password step passed; a second factor is awaited' },
  'auth.logout': { description: 'A session was ended by its holder' },
  'auth.account_locked': { description: 'Too many failed proofs locked the account' },
  'auth.account_unlocked': { description: 'An operator lifted a lockout' },
  'auth.password_changed': { description: 'A signed-in user changed their password' },
  'auth.password_change_failed': { description: 'A password change was refused: the current password was wrong' },
  'auth.password_reset_requested': { description: 'A password reset link was asked for' },
  'auth.magic_link_requested': { description: 'A sign-in link was asked for (mailed only to a verified address, for the asking browser)' },
  'auth.password_reset': { description: 'A password was reset with a reset link' },
  'auth.step_up': { description: 'A signed-in user proved their identity again (sudo mode)' },
  'auth.step_up_failed': { description: 'A step-up was refused: the password was wrong' },
  'auth.session_revoked': { description: 'A session was revoked' },
  'auth.other_sessions_revoked': { description: 'A user ended every session of theirs but the one they used' },
  'auth.mfa_enrollment_started': { description: 'A TOTP secret was issued, not yet confirmed' },
  'auth.mfa_enabled': { description: 'TOTP was confirmed and turned on' },
  'auth.mfa_disabled': { description: 'TOTP was turned off' },
  'auth.mfa_failed': { description: 'A second-factor code was refused' },
  'auth.recovery_code_used': { description: 'A recovery code was spent' },
  'auth.recovery_codes_regenerated': { description: 'New recovery codes replaced the old ones' },
  'auth.passkey_challenge': { description: 'A passkey ceremony was started' },
  'auth.passkey_added': { description: 'A passkey was registered' },
  'auth.passkey_renamed': { description: 'A passkey was renamed' },
  'auth.passkey_removed': { description: 'A passkey was removed' },
  'auth.passkey_failed': { description: 'A passkey assertion or registration was refused' },
  'authz.denied': { description: 'A request was refused for lack of permission, project scope or policy' },
  'org.created': { description: 'An organization was created' },
  'org.updated': { description: 'The organization was renamed', webhook: true },
  'org.settings_updated': { description: 'Security settings changed', webhook: true },
  'org.plan_changed': { description: 'The operator moved the organization to another plan (its upload limits: per file and in all)', webhook: true },
  'org.deletion_scheduled': { description: 'An owner deleted the organization: sessions and API keys ended at once; it can be restored until its data keys are destroyed', webhook: true },
  'org.restored': { description: 'An owner restored the organization within its deletion grace period', webhook: true },
  'org.export_requested': { description: 'An owner asked for an export of every row the organization owns (a signed, encrypted archive written by the export job)' },
  'org.export_completed': { description: 'The export job finished an archive: its manifest (row counts, SHA-256 digests) is signed with the deployment\u2019s export key' },
  'org.export_link_created': { description: 'An owner asked for a download link to an export (single use, short-lived; only the token\u2019s hash is kept)' },
  'org.export_downloaded': { description: 'An export\u2019s download link was used (it cannot be used again)' },
  'org.export_expired': { description: 'An export\u2019s archive reached the end of its retention and was deleted' },
  'org.shredded': { description: 'The deletion grace period ended: every data key of the organization was destroyed and its memberships removed' },
  'keys.kek_rotation_started': { description: 'An operator started rewrapping every data key under the active KEK (palisade keys rotate-kek)' },
  'keys.kek_rotation_finished': { description: 'An operator\u2019s KEK rotation rewrapped its last pending data key' },
  'member.added': { description: 'A member joined (organization creation)' },
  'member.role_changed': { description: 'A member\u2019s role or project restriction changed', webhook: true },
  'member.removed': { description: 'A member was removed', webhook: true },
  'member.left': { description: 'A member left the organization', webhook: true },
  'member.data_exported': { description: 'An owner exported everything the organization holds about a member (a data-subject access request)' },
  'member.erased': { description: 'An owner erased a member: membership, keys, identities and invitations removed, personal parts of their audit events destroyed, their account deleted when no other organization holds them', webhook: true },
  'user.erased': { description: 'A person erased from their last organization: the personal parts of their account\u2019s own events (sign-ins) destroyed (system trail)' },
  'member.sessions_revoked': { description: 'Every session of a member was revoked', webhook: true },
  'invitation.created': { description: 'An invitation was sent', webhook: true },
  'invitation.revoked': { description: 'An invitation was revoked', webhook: true },
  'invitation.accepted': { description: 'An invitation was accepted', webhook: true },
  'role.created': { description: 'A custom role was created', webhook: true },
  'role.updated': { description: 'A custom role changed', webhook: true },
  'role.deleted': { description: 'A custom role was deleted', webhook: true },
  'project.created': { description: 'A project was created', webhook: true },
  'project.updated': { description: 'A project was renamed', webhook: true },
  'project.deleted': { description: 'A project was deleted', webhook: true },
  'project.member_assigned': { description: 'A restricted member was assigned to a project', webhook: true },
  'project.member_unassigned': { description: 'A restricted member was unassigned from a project', webhook: true },
  'asset.created': { description: 'An asset was created', webhook: true },
  'asset.deleted': { description: 'An asset was deleted', webhook: true },
  'file.uploaded': { description: 'A file was uploaded to a project: it passed the size, name, content and archive checks and the malware scan, and is available', webhook: true },
  'file.refused': { description: 'An upload was refused (its size, name, content, an archive inside, malware found, or no scanner available), with the reason; nothing was kept' },
  'file.downloaded': { description: 'A file was downloaded' },
  'file.deleted': { description: 'A file was deleted', webhook: true },
  'api_key.created': { description: 'An API key was created', webhook: true },
  'api_key.revoked': { description: 'An API key was revoked', webhook: true },
  'webhook.endpoint_created': { description: 'A webhook endpoint was added' },
  'webhook.endpoint_updated': { description: 'A webhook endpoint changed' },
  'webhook.endpoint_deleted': { description: 'A webhook endpoint was deleted' },
  'webhook.endpoint_disabled': { description: 'An endpoint that kept failing was disabled', webhook: true },
  'webhook.secret_rotated': { description: 'A webhook endpoint\u2019s signing secret was rotated' },
  'webhook.redelivered': { description: 'A delivery was sent again on request' },
  'audit.stream_created': { description: 'An audit stream to the org\u2019s SIEM was added (HTTPS or syslog)' },
  'audit.stream_updated': { description: 'An audit stream changed (destination, description, enabled)' },
  'audit.stream_deleted': { description: 'An audit stream was deleted' },
  'audit.stream_secret_rotated': { description: 'An HTTPS audit stream\u2019s signing secret was rotated' },
  'audit.stream_tested': { description: 'A test event was sent to an audit stream on request (its outcome in the details)' },
  'inbound.source_created': { description: 'An inbound webhook source was added' },
  'inbound.source_deleted': { description: 'An inbound webhook source was deleted' },
  'inbound.received': { description: 'A verified inbound event was applied' },
  'credential.created': { description: 'An integration credential was added (its value sealed, never recorded)' },
  'credential.replaced': { description: 'An integration credential\u2019s value was replaced (rotated), with the reason given' },
  'credential.deleted': { description: 'An integration credential was deleted (its value destroyed)' },
  'credential.used': { description: 'Host code opened an integration credential by name (who asked, the use number; never the value)' },
  'domain.claimed': { description: 'An email domain was claimed (its DNS record not yet checked)' },
  'domain.verified': { description: 'An email domain was proven by its DNS TXT record', webhook: true },
  'domain.removed': { description: 'A claimed or verified email domain was removed', webhook: true },
  'sso.connection_created': { description: 'A single sign-on connection was added (disabled until enabled)', webhook: true },
  'sso.connection_updated': { description: 'A single sign-on connection changed (settings, secret, enabled)', webhook: true },
  'sso.connection_deleted': { description: 'A single sign-on connection was deleted (its secret destroyed)', webhook: true },
  'sso.connection_test_started': { description: 'An admin started a test sign-in at a connection\u2019s identity provider (no session, no account)' },
  'sso.identity_link_started': { description: 'A signed-in member started linking their identity at a connection\u2019s identity provider' },
  'sso.connection_tested': { description: 'A test sign-in came back from the identity provider: succeeded (claims kept sealed for the admin) or failed, with why' },
  'sso.identity_linked': { description: 'An identity at an org\u2019s identity provider was linked to an account (first SSO sign-in)', webhook: true },
  'sso.member_provisioned': { description: 'An SSO sign-in created an account or a membership (just-in-time provisioning)', webhook: true },
  'sso.enforcement_enabled': { description: 'The org now sends its verified domains to SSO: other sign-ins refused, non-SSO sessions of those users ended', webhook: true },
  'sso.enforcement_disabled': { description: 'The org no longer requires SSO for its verified domains', webhook: true },
  'sso.break_glass_owners_changed': { description: 'The owners who may still sign in locally under SSO enforcement changed', webhook: true },
  'sso.sessions_ended': { description: 'Non-SSO sessions of users in a domain under SSO enforcement were ended (a domain verified while enforcement is on)' },
  'auth.sso_required': { description: 'A local sign-in of a user under the org’s SSO enforcement was refused (sent to SSO)' },
  'auth.break_glass': { description: 'A break-glass owner signed in locally despite SSO enforcement (password and second factor; the session lasts at most an hour; the other owners are mailed)', webhook: true },
  'auth.sso_failed': { description: 'An SSO sign-in was refused (the IdP\u2019s answer, or no account it may reach)' },
  'auth.social_failed': { description: 'A social sign-in or link was refused (the provider\u2019s answer, an unverified address, an address whose account is not linked)' },
  'auth.social_account_created': { description: 'A social sign-in created an account (the provider verified its address; sign-up open)' },
  'auth.social_identity_linked': { description: 'An identity at a social provider was linked to an account (at its creation, or from a signed-in session)' },
  'auth.social_identity_unlinked': { description: 'A user unlinked their identity at a social provider from their account (it signs nobody in any more)' },
  'auth.social_link_started': { description: 'A signed-in user started linking their identity at a social provider' },
  'org_key.rotated': { description: 'The org\u2019s data key was rotated: a new key seals from now on, the old one is retired for the rollback window, and a job re-encrypts existing sealed values' },
  'org_key.rolled_back': { description: 'A data-key rotation was rolled back: the retired key is active again and values are re-encrypted back under it' },
  'org_key.rotation_finished': { description: 'Every sealed value of the org is under its active data key (the re-encryption job and its final sweep are done)' },
  'org_key.destroyed': { description: 'A retired data key was destroyed at the end of its rollback window: what it sealed cannot be opened any more' },
} as const satisfies Record<string, ActionSpec>;

export type AuditAction = keyof typeof AUDIT_ACTIONS;

export const ALL_AUDIT_ACTIONS = Object.keys(AUDIT_ACTIONS) as AuditAction[];

export function isAuditAction(value: unknown): value is AuditAction {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(AUDIT_ACTIONS, value);
}

type WebhookActions<T> = { [K in keyof T]: T[K] extends { webhook: true } ? K : never }[keyof T];

/** The audit actions an org can subscribe to as webhook events. */
export type WebhookEventType = WebhookActions<typeof AUDIT_ACTIONS>;

export const WEBHOOK_EVENT_TYPES = ALL_AUDIT_ACTIONS.filter(
  (a): a is WebhookEventType => 'webhook' in AUDIT_ACTIONS[a],
);
