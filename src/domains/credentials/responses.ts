import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';
import { CREDENTIAL_KINDS, USE_STATUSES } from './rules.js';

/** What the API sends of a credential: its metadata. The value has no field here, so it cannot leave. */
export const credentialView = z.object({
  id: uuid,
  name: z.string().meta({ description: 'What host code asks the vault for (`vault.use(orgId, name, …)`)' }),
  kind: z.enum(CREDENTIAL_KINDS),
  description: z.string(),
  version: z.number().int().meta({ description: '1 when created, one more per replacement (the rotation history\u2019s key)' }),
  createdBy: uuid,
  createdAt: timestamp,
  updatedAt: timestamp.meta({ description: 'When the value was last set (created or replaced)' }),
  lastUsedAt: timestamp.nullable(),
  lastUsedBy: z.string().nullable().meta({ description: 'The name the host code gave when it last opened the credential' }),
  useCount: z.number().int(),
});
export type CredentialView = z.infer<typeof credentialView>;

export const credentialList = z.object({ credentials: z.array(credentialView) });

export const rotationView = z.object({
  version: z.number().int(),
  event: z.enum(['created', 'replaced']),
  at: timestamp,
  by: uuid.meta({ description: 'The member who set the value' }),
  reason: z.string().meta({ description: 'Why it was replaced (empty at creation)' }),
});
export type RotationView = z.infer<typeof rotationView>;

export const rotationPage = z.object({
  rotations: z.array(rotationView),
  nextBefore: z.number().int().nullable().meta({ description: 'Pass as `before` for the next (older) page; null on the last one' }),
});

export const useView = z.object({
  use: z.number().int().meta({ description: 'The credential\u2019s use number (newest first)' }),
  by: z.string(),
  startedAt: timestamp,
  finishedAt: timestamp,
  status: z.enum(USE_STATUSES),
  message: z.string().meta({ description: 'What the host code reported (at most 200 characters; never the credential)' }),
});
export type UseView = z.infer<typeof useView>;

export const usePage = z.object({
  uses: z.array(useView),
  nextBefore: z.number().int().nullable().meta({ description: 'Pass as `before` for the next (older) page; null on the last one' }),
});
