import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';
import { API_KEY_PERMISSIONS, type Permission } from '../../kernel/permissions.js';

/** A permission an API key may hold (the kernel's API_KEY_PERMISSIONS). */
export const keyPermission = z.enum(API_KEY_PERMISSIONS as [Permission, ...Permission[]]);

export const keyKind = z.enum(['secret', 'publishable']);

/**
 * What the API sends of a key: never the token nor its hash, only the prefix and the last four
 * characters that let a person recognise it.
 */
export const apiKeyView = z.object({
  id: uuid,
  name: z.string(),
  kind: keyKind,
  prefix: z.string().meta({ description: 'The first characters of the token (pal_sk_ or pal_pk_)' }),
  lastFour: z.string(),
  permissions: z.array(keyPermission),
  projectId: uuid.nullable(),
  createdBy: uuid,
  createdAt: timestamp,
  expiresAt: timestamp.nullable(),
  lastUsedAt: timestamp.nullable().meta({ description: 'Recorded at most once a minute and written in batches' }),
  revokedAt: timestamp.nullable(),
  status: z.enum(['active', 'revoked', 'expired']),
});
export type ApiKeyView = z.infer<typeof apiKeyView>;

/** A new key and its token: the only answer that ever holds the token. */
export const createdApiKey = z.object({
  key: apiKeyView,
  token: z.string().meta({ description: 'The secret: shown in this answer only, stored as a hash' }),
});

export const apiKeyList = z.object({ keys: z.array(apiKeyView) });

/** The calling key as it stands now: its scopes within its creator's current rights. */
export const keyIdentity = z.object({
  keyId: uuid,
  kind: keyKind,
  orgId: uuid,
  permissions: z.array(keyPermission).meta({ description: 'Effective now: the key\u2019s scopes within its creator\u2019s current rights' }),
  projectIds: z.array(uuid).nullable().meta({ description: 'The projects the key reaches; null for every project of the org' }),
});
export type KeyIdentity = z.infer<typeof keyIdentity>;
