import { sha256Hex } from '../../crypto/index.js';

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

/** Each event's hash covers its predecessor's hash and every field of the event, its position included. */
export function eventHash(prevHash: string, e: ChainedEvent): string {
  return sha256Hex(
    `${prevHash}\n${canonicalJson([
      e.org_id, e.seq, e.id, e.at, e.actor_type, e.actor_id, e.actor_role, e.action,
      e.target_type, e.target_id, e.result, e.ip, e.user_agent, e.request_id, e.details,
    ])}`,
  );
}
