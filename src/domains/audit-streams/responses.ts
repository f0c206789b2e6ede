import { z } from 'zod';
import { timestamp, uuid } from '../../http/schemas.js';

export const streamStatus = z.enum(['ok', 'retrying', 'failing', 'disabled']).meta({
  description: 'ok: the last attempt was acknowledged (or none was due yet); retrying: the last attempts failed and are being retried; '
    + 'failing: FAILING_AFTER attempts in a row failed (alert on it); disabled: turned off, the cursor waits where it is',
});

/** What the API sends of a stream: never its signing secrets (stored sealed). */
export const streamView = z.object({
  id: uuid,
  kind: z.enum(['https', 'syslog']),
  url: z.string().nullable().meta({ description: 'https: the receiver (NDJSON batches, Standard Webhooks signatures); null for syslog' }),
  host: z.string().nullable().meta({ description: 'syslog: the receiver\u2019s host; null for https' }),
  port: z.number().int().nullable(),
  tls: z.boolean().meta({ description: 'syslog: over TLS (RFC 5425); always true for https' }),
  description: z.string(),
  enabled: z.boolean(),
  hasAuthorization: z.boolean().meta({ description: 'https: batches carry the Authorization header set for the receiver (never shown)' }),
  previousSecretExpiresAt: timestamp.nullable().meta({ description: 'https: while set, batches carry a signature by the previous secret too' }),
  status: streamStatus,
  lastError: z.string().nullable().meta({ description: 'A short code (timeout, connection_refused, http_status_503, tls_error, destination_refused_private…), never the receiver\u2019s words' }),
  consecutiveFailures: z.number().int(),
  lagEvents: z.number().int().meta({ description: 'Events committed and not yet acknowledged by the receiver' }),
  lagSeconds: z.number().int().meta({ description: 'Age of the oldest event not yet acknowledged (0 when caught up)' }),
  cursorSeq: z.number().int().meta({ description: 'Position in the org\u2019s chain of the last event acknowledged' }),
  lastDeliveredAt: timestamp.nullable(),
  lastAttemptAt: timestamp.nullable(),
  nextAttemptAt: timestamp.nullable().meta({ description: 'While retrying: not before then' }),
  createdAt: timestamp,
  updatedAt: timestamp,
});
export type StreamView = z.infer<typeof streamView>;

export const streamList = z.object({ streams: z.array(streamView) });

const secret = z.string().meta({ description: 'https: the signing secret (whsec_\u2026), shown in this answer only and stored sealed; null for syslog' });

export const createdStream = z.object({ stream: streamView, secret: secret.nullable() });

export const rotatedStreamSecret = z.object({
  secret,
  previousSecretExpiresAt: timestamp.meta({ description: 'Until then the previous secret keeps signing too' }),
});

export const testResult = z.object({
  ok: z.boolean(),
  error: z.string().nullable().meta({ description: 'A short code when the receiver did not acknowledge; never its words' }),
  latencyMs: z.number().int(),
});
