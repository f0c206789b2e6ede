import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';

/** What the API sends of a file; the service builds exactly this (FileView). Never its key or where it is stored. */
export const fileView = z.object({
  id: uuid,
  projectId: uuid,
  name: z.string().meta({ description: 'The checked file name (Unicode NFC); the download offers it as its file name' }),
  contentType: z.string().meta({ description: 'What the bytes are (magic bytes, or UTF-8 text for a text type), not what the client declared' }),
  sizeBytes: z.number().int().min(0),
  sha256: z.string().regex(/^[0-9a-f]{64}$/).meta({ description: 'SHA-256 of the file\u2019s bytes (hex)' }),
  scanned: z.boolean().meta({ description: 'false only where the deployment opted out of malware scanning (development)' }),
  uploadedBy: z.object({ type: z.enum(['user', 'api_key']), id: uuid }),
  createdAt: timestamp.meta({ description: 'When the file passed its checks and became available' }),
});
export type FileView = z.infer<typeof fileView>;

export const fileList = z.object({
  files: z.array(fileView).meta({ description: 'Newest first' }),
  limits: z.object({
    plan: z.string().meta({ description: 'The organization\u2019s plan (set by the operator), whose limits these are' }),
    fileBytes: z.number().int().meta({ description: 'Largest file the organization\u2019s plan accepts' }),
    quotaBytes: z.number().int().meta({ description: 'What the organization\u2019s files may take in all' }),
    usedBytes: z.number().int().meta({ description: 'What they take now, uploads in progress included' }),
    extensions: z.array(z.string()).nullable().meta({ description: 'The project\u2019s allowlist of extensions; null: every type not refused by the denylist' }),
  }),
});
export type FileList = z.infer<typeof fileList>;
