import { safeEqual } from '../../crypto/index.js';

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

/**
 * What a chain MAC authenticates; each purpose has its own derived key, so a MAC made for one
 * (an event link, stored in the database) can never pass for another (a head, a checkpoint).
 */
export type ChainMacPurpose = 'audit-chain' | 'audit-head' | 'audit-checkpoint';

/** Authenticates chain links, heads and checkpoints: HMAC under keys that live in configuration, not in the database. */
export interface ChainKeys {
  activeKeyId: string;
  /** Throws for an unknown key id. */
  mac(purpose: ChainMacPurpose, keyId: string, data: string): string;
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
    'audit-chain',
    e.key_id,
    `${prevHash}\n${canonicalJson([
      e.org_id, e.seq, e.id, e.at, e.actor_type, e.actor_id, e.actor_role, e.action,
      e.target_type, e.target_id, e.result, e.ip, e.user_agent, e.request_id, e.details, e.key_id,
    ])}`,
  );
}

/** A chain's head: its last position and that event's hash (seq 0 and GENESIS_HASH before any event). */
export interface ChainHead {
  org_id: string;
  seq: number;
  hash: string;
}

/**
 * The head's MAC. The runtime role must move the head (it holds UPDATE), and whoever deletes the
 * last events can set the head to an earlier event's seq and hash, both readable in the table:
 * without the key they cannot make the MAC for that position.
 */
export function headMac(keys: ChainKeys, keyId: string, head: ChainHead): string {
  return keys.mac('audit-head', keyId, canonicalJson([head.org_id, head.seq, head.hash]));
}

/** Null when the head's MAC holds; otherwise why not (no MAC, unknown key, or a MAC of another position). */
export function headMacProblem(keys: ChainKeys, head: ChainHead & { key_id: string; mac: string }): string | null {
  if (head.mac === '') return 'the chain head carries no MAC';
  let expected: string;
  try {
    expected = headMac(keys, head.key_id, head);
  } catch {
    return `the chain head names an unknown key "${head.key_id}": forged or the key is missing`;
  }
  return safeEqual(expected, head.mac) ? null : `the chain head's MAC does not match its position (seq ${head.seq}): the head was moved or forged`;
}
