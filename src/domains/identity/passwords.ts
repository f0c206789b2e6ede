import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { hash, verify } from '@node-rs/argon2';
import { AppError } from '../../kernel/errors.js';

/** OWASP's argon2id baseline: 19 MiB, 2 passes, 1 lane. Runs on libuv's pool, not the event loop. */
const ARGON2 = { algorithm: 2 /* Algorithm.Argon2id (a const enum) */, memoryCost: 19456, timeCost: 2, parallelism: 1 } as const;

/**
 * At most (cores - 1) argon2 computations at once, at least one: a flood of logins queues here
 * instead of taking every core from the requests that are already signed in.
 */
const ARGON_SLOTS = Math.max(1, availableParallelism() - 1);
let busy = 0;
const waiting: (() => void)[] = [];

async function withArgonSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (busy >= ARGON_SLOTS) await new Promise<void>((resolve) => waiting.push(resolve));
  else busy++;
  try {
    return await fn();
  } finally {
    const next = waiting.shift();
    if (next) next();
    else busy--;
  }
}

export const PASSWORD_MIN = 12;
export const PASSWORD_MAX = 128;

let common: Set<string> | null = null;
function commonPasswords(): Set<string> {
  if (!common) {
    const text = readFileSync(new URL('./common-passwords.txt', import.meta.url), 'utf8');
    common = new Set(text.split('\n').filter((l) => l && !l.startsWith('#')));
  }
  return common;
}

/**
 * Length 12-128 (code points) and not a common password, nor one padded with digits and
 * symbols, nor one repeated ("passwordpassword").
 */
export function passwordProblem(password: string): string | null {
  const length = [...password].length;
  if (length < PASSWORD_MIN) return `use at least ${PASSWORD_MIN} characters`;
  if (length > PASSWORD_MAX) return `use at most ${PASSWORD_MAX} characters`;
  const lower = password.toLowerCase();
  const list = commonPasswords();
  const core = lower.replace(/[\d\W_]+$/u, '').replace(/^[\d\W_]+/u, '');
  if (list.has(lower) || (core.length >= 4 && list.has(core))) return 'this password is too common';
  if (/^(.)\1+$/u.test(password)) return 'this password is too simple';
  for (let n = 1; n <= lower.length / 2; n++) {
    if (lower.length % n === 0 && lower.slice(0, n).repeat(lower.length / n) === lower) {
      if (n < 4 || list.has(lower.slice(0, n))) return 'this password is too simple';
    }
  }
  return null;
}

export function assertPasswordAcceptable(password: string): void {
  const problem = passwordProblem(password);
  if (problem) throw new AppError('weak_password', problem);
}

export function hashPassword(password: string): Promise<string> {
  return withArgonSlot(() => hash(password, ARGON2));
}

export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try {
    return await withArgonSlot(() => verify(stored, password));
  } catch {
    return false;
  }
}

let dummy: Promise<string> | null = null;
/** A hash to verify against when the account does not exist, so that both cases cost the same. */
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword('palisade-timing-equaliser-not-a-password');
  return dummy;
}
