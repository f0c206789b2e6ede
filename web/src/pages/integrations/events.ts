import type { paths } from '../../api/schema.gen';

/** A subscription the server accepts ('*' or one event type), from the generated schema. */
export type Subscription = paths['/api/orgs/{orgId}/webhooks']['post']['requestBody']['content']['application/json']['events'][number];

/**
 * The server's webhook event types (kernel WEBHOOK_EVENT_TYPES). No route publishes them, so they
 * are listed here; `satisfies` makes the typecheck fail if the server drops one.
 */
export const EVENT_TYPES = [
  'org.updated', 'org.settings_updated', 'org.plan_changed', 'org.deletion_scheduled', 'org.restored',
  'member.role_changed', 'member.removed', 'member.left', 'member.erased', 'member.sessions_revoked',
  'invitation.created', 'invitation.revoked', 'invitation.accepted', 'role.created', 'role.updated', 'role.deleted',
  'project.created', 'project.updated', 'project.deleted', 'project.member_assigned', 'project.member_unassigned',
  'asset.created', 'asset.deleted', 'file.uploaded', 'file.deleted', 'api_key.created', 'api_key.revoked', 'webhook.endpoint_disabled',
  'domain.verified', 'domain.removed', 'sso.connection_created', 'sso.connection_updated', 'sso.connection_deleted',
  'sso.identity_linked', 'sso.member_provisioned', 'sso.enforcement_enabled', 'sso.enforcement_disabled',
  'sso.break_glass_owners_changed', 'auth.break_glass',
] as const satisfies readonly Subscription[];

// And the other way: the typecheck names any event type the server publishes that is not listed above.
type Unlisted = Exclude<Exclude<Subscription, '*'>, (typeof EVENT_TYPES)[number]>;
const everyTypeListed: [Unlisted] extends [never] ? true : Unlisted = true;
void everyTypeListed;
