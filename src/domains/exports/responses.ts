import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';

export const EXPORT_STATES = ['queued', 'running', 'done', 'failed', 'expired'] as const;

/** An export as the API shows it: progress and outcome; never its key, path or link tokens. */
export const exportView = z.object({
  id: uuid,
  state: z.enum(EXPORT_STATES).meta({ description: 'queued → running → done (downloadable until expiresAt) → expired; failed after repeated errors' }),
  requestedBy: uuid,
  requestedAt: timestamp,
  startedAt: timestamp.nullable(),
  finishedAt: timestamp.nullable(),
  expiresAt: timestamp.nullable().meta({ description: 'When the archive is deleted (set once it is done)' }),
  rowsDone: z.number().int(),
  rowsTotal: z.number().int().meta({ description: 'Rows counted when the export started (the estimate progress is measured against)' }),
  bytes: z.number().int().nullable().meta({ description: 'Size of the archive at rest (encrypted), once done' }),
  manifestSha256: z.string().nullable().meta({ description: 'SHA-256 of the signed manifest.json, once done' }),
  error: z.string().nullable(),
});
export type ExportView = z.infer<typeof exportView>;

export const exportList = z.object({ exports: z.array(exportView) });

export const exportLinkView = z.object({
  url: z.string().meta({ description: 'Path of the download (GET, no credential but the token): works once, until expiresAt' }),
  expiresAt: timestamp,
});
export type ExportLinkView = z.infer<typeof exportLinkView>;

export const publishedKeys = z.object({
  keys: z.array(
    z.object({ kty: z.string(), crv: z.string(), x: z.string(), kid: z.string(), alg: z.string(), use: z.string() }),
  ).meta({ description: 'Ed25519 public keys (JWK, RFC 8037) that sign export manifests; manifest.json names its kid' }),
});
