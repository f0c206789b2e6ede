export const GENESIS_HASH = '0'.repeat(64);

export interface ChainedEvent {
  org_id: string;
  seq: number;
  id: string;
  at: string;
  actor_type: string;
  actor_id: string | null;
  actor_role: string | null;
  action: string;
  target_type: string | null;
  target_id: string | null;
  result: string;
  ip: string;
  user_agent: string;
  request_id: string;
  details: unknown;
  /** Which chain key authenticated the event (the KEK id it is derived from). */
  key_id: string;
}

/** Authenticates chain links: HMAC under a key that lives in configuration, not in the database. */
export interface ChainKeys {
  activeKeyId: string;
  /** Throws for an unknown key id. */
  mac(keyId: string, data: string): string;
}

/** JSON with object keys sorted at every level: jsonb does not keep key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const obj = value as Record<string, unknown>;
  return `{${Object.keys(obj)
    .sort()
    .filter((k) => obj[k] !== undefined)
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`)
    .join(',')}}`;
}

/**
 * Each event's hash covers its predecessor's hash and every field of the event, its position
 * included, keyed: a database writer without the key can neither edit nor append a valid link.
 */
export function eventHash(keys: ChainKeys, prevHash: string, e: ChainedEvent): string {
  return keys.mac(
    e.key_id,
    `${prevHash}\n${canonicalJson([
      e.org_id, e.seq, e.id, e.at, e.actor_type, e.actor_id, e.actor_role, e.action,
      e.target_type, e.target_id, e.result, e.ip, e.user_agent, e.request_id, e.details, e.key_id,
    ])}`,
  );
}
