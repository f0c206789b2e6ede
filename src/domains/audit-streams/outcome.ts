/** What one attempt to send a batch came to. */
export interface StreamOutcome {
  ok: boolean;
  /** A short code (^[a-z0-9_]{1,32}$) from the transports' fixed wording; never what the peer sent. */
  error: string | null;
  latencyMs: number;
}

/**
 * The transports' fixed wording ("connection refused", "http status 503", "destination
 * refused: private") as a code the status can show and the table's check accepts.
 */
export function errorCode(reason: string): string {
  const code = reason.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '').slice(0, 32).replace(/_+$/, '');
  return code === '' ? 'network_error' : code;
}
