import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';

/** An org's data keys and its latest rotation: ids and dates only, never key material. */
export const dataKeyState = z.object({
  activeKey: z.object({
    id: uuid,
    createdAt: timestamp,
    nextRotationAt: timestamp.nullable().meta({ description: 'When the worker rotates it by schedule; null when scheduled rotation is off' }),
  }).nullable().meta({ description: 'null until the org seals its first value (the key is created then)' }),
  rotation: z.object({
    id: uuid,
    trigger: z.enum(['manual', 'schedule', 'rollback']),
    status: z.enum(['running', 'done', 'superseded']).meta({ description: 'superseded: a rollback replaced it while it ran' }),
    phase: z.enum(['pass', 'wait', 'sweep']).meta({
      description: 'pass: re-encrypting; wait: every value passed, waiting until sweepAfter; sweep: the final pass for values other instances sealed under the old key meanwhile',
    }),
    fromKeyId: uuid,
    toKeyId: uuid,
    total: z.number().int().meta({ description: 'Values to re-encrypt (counted at the start; grows if the sweep finds more, equals done when finished)' }),
    done: z.number().int(),
    startedAt: timestamp,
    sweepAfter: timestamp,
    finishedAt: timestamp.nullable(),
  }).nullable().meta({ description: 'The latest rotation, or null if the org never rotated' }),
  retiredKeys: z.array(z.object({
    id: uuid,
    createdAt: timestamp,
    retiredAt: timestamp.nullable(),
    destroyAfter: timestamp.nullable().meta({ description: 'End of the rollback window: the key is destroyed then (once no value is under it)' }),
    destroyedAt: timestamp.nullable(),
  })),
  settings: z.object({
    rotationDays: z.number().int().meta({ description: 'Scheduled rotation period (PALISADE_DATA_KEY_ROTATION_DAYS); 0: off' }),
    rollbackDays: z.number().int().meta({ description: 'Rollback window of a retired key (PALISADE_DATA_KEY_ROLLBACK_DAYS)' }),
  }),
});
