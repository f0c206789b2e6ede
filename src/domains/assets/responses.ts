import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';

/** What the API sends of an asset; the service builds exactly this (AssetView). */
export const assetView = z.object({
  id: uuid,
  projectId: uuid,
  name: z.string(),
  kind: z.string().meta({ description: 'A free label chosen at creation: lowercase letters, digits, _ and -' }),
  createdAt: timestamp,
});
export type AssetView = z.infer<typeof assetView>;

export const assetList = z.object({ assets: z.array(assetView).meta({ description: 'Newest first' }) });
