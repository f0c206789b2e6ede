import type { Clock } from '../../kernel/clock.js';
import { signedHeaders, type WebhookTransport } from '../webhooks/index.js';
import { ndjsonBatch, octetFrame, syslogMessage, type StreamEvent } from './format.js';
import { errorCode, type StreamOutcome } from './outcome.js';
import type { SyslogTransport } from './syslog.js';

/** A stream as the sender needs it: where, and (https) the secrets that sign and the receiver's Authorization header. */
export type StreamTarget =
  | { kind: 'https'; url: string; secrets: readonly string[]; authorization?: string | null }
  | { kind: 'syslog'; host: string; port: number; tls: boolean };

export interface StreamSender {
  /** One batch; `batchId` is the webhook-id of an HTTPS batch (receivers deduplicate events by orgId + seq). */
  send(target: StreamTarget, events: readonly StreamEvent[], batchId: string): Promise<StreamOutcome>;
}

export const STREAM_USER_AGENT = 'Palisade-AuditStream/1';

export function createStreamSender(deps: { http: WebhookTransport; syslog: SyslogTransport; clock: Clock; hostname: string }): StreamSender {
  return {
    async send(target, events, batchId) {
      if (target.kind === 'syslog') return deps.syslog.send(target, events.map((e) => octetFrame(syslogMessage(e, deps.hostname))));
      const body = ndjsonBatch(events);
      let headers: Record<string, string>;
      try {
        headers = signedHeaders(batchId, deps.clock.now(), body, target.secrets);
        if (target.authorization) headers.authorization = target.authorization;
      } catch {
        // A stored secret that is no whsec_ secret (only a hand-edited row): a status, not a crash.
        return { ok: false, error: 'signing_failed', latencyMs: 0 };
      }
      const out = await deps.http.send(target.url, headers, body, { contentType: 'application/x-ndjson', userAgent: STREAM_USER_AGENT });
      return { ok: out.ok, error: out.ok ? null : errorCode(out.error ?? 'network error'), latencyMs: out.latencyMs };
    },
  };
}
