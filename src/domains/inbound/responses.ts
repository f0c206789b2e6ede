import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';

/** What the API sends of an inbound source: never its secret (stored sealed). */
export const sourceView = z.object({
  id: uuid,
  name: z.string(),
  provider: z.string().meta({ description: 'The provider whose signature scheme the source checks (standard, stripe…)' }),
  createdBy: uuid,
  createdAt: timestamp,
  receivePath: z.string().meta({ description: 'Where the provider posts events (append to the public origin)' }),
});
export type SourceView = z.infer<typeof sourceView>;

export const sourceList = z.object({ sources: z.array(sourceView) });

/** A verified delivery: applied now, or already applied before (the same event id). */
export const receipt = z.object({
  received: z.literal(true),
  duplicate: z.boolean().meta({ description: 'The event id was already applied: nothing was done again' }),
});
export type Receipt = z.infer<typeof receipt>;
