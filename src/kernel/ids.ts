const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID_RE.test(value);
}

/** The audit chain of events that belong to no organization (login, registration, probes). */
export const SYSTEM_ORG_ID = '00000000-0000-0000-0000-000000000000';
