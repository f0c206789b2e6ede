import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AppError, InvariantError } from '../kernel/errors.js';
import { Keyring, parseKeks, SealedValueError, type DataKeyStore, type FieldRef, type Kek, type WrappedKey } from './keyring.js';

/** A plain in-memory implementation of the store interface (the SQL one is tested in domains/keys). */
class MemoryStore implements DataKeyStore {
  readonly keys = new Map<string, WrappedKey[]>();
  async active(scope: string): Promise<WrappedKey | null> {
    return this.keys.get(scope)?.[0] ?? null;
  }
  async byId(scope: string, id: string): Promise<WrappedKey | null> {
    return this.keys.get(scope)?.find((k) => k.id === id) ?? null;
  }
  async insert(scope: string, key: WrappedKey): Promise<void> {
    this.keys.set(scope, [...(this.keys.get(scope) ?? []), key]);
  }
  replace(scope: string, key: WrappedKey): void {
    this.keys.set(scope, (this.keys.get(scope) ?? []).map((k) => (k.id === key.id ? key : k)));
  }
}

const kek = (id: string, fill: number): Kek => ({ id, key: Buffer.alloc(32, fill) });
const K1 = kek('k1', 1);
const K2 = kek('k2', 2);
const ORG_A = '8b0c6a6e-3f0a-4c1e-9a53-1f2d3c4b5a69';
const ORG_B = '1e7a2b3c-4d5e-4f60-8a1b-2c3d4e5f6a7b';
const REF: FieldRef = { scope: ORG_A, table: 'integration_credentials', column: 'secret', row: 'row-1' };

async function sealed(plaintext = 'hunter2', ring = new Keyring([K1]), store = new MemoryStore()) {
  const value = await ring.seal(store, REF, plaintext, randomUUID);
  return { ring, store, value };
}

/** Flips one bit of part `index` of the sealed value (0 iv, 1 ciphertext, 2 tag). */
function tamper(value: string, index: 0 | 1 | 2): string {
  const [version, keyId, ...parts] = value.split('.');
  const bytes = Buffer.from(parts[index] ?? '', 'base64url');
  bytes[0] = (bytes[0] ?? 0) ^ 0x01;
  parts[index] = bytes.toString('base64url');
  return [version, keyId, ...parts].join('.');
}

async function openError(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'opened';
  } catch (err) {
    if (err instanceof AppError) return err.code;
    if (err instanceof InvariantError) return 'invariant';
    throw err;
  }
}

describe('Keyring seal and open', () => {
  it.each(['hunter2', '', 'žluťoučký kůň 🐴', 'x'.repeat(10_000)])('round-trips %j', async (plaintext) => {
    const { ring, store, value } = await sealed(plaintext);
    expect(await ring.open(store, REF, value)).toBe(plaintext);
    // A fresh keyring (empty cache) opens it from the stored wrapped key alone.
    expect(await new Keyring([K1]).open(store, REF, value)).toBe(plaintext);
  });

  it('produces v1.<key id>.<iv>.<ciphertext>.<tag> without the plaintext, fresh IV each time', async () => {
    const { ring, store, value } = await sealed('correct horse battery staple');
    const again = await ring.seal(store, REF, 'correct horse battery staple', randomUUID);
    const parts = value.split('.');
    expect(parts).toHaveLength(5);
    expect(parts[0]).toBe('v1');
    expect(parts[1]).toBe(store.keys.get(ORG_A)?.[0]?.id);
    expect(Buffer.from(parts[2] ?? '', 'base64url')).toHaveLength(12);
    expect(Buffer.from(parts[4] ?? '', 'base64url')).toHaveLength(16);
    expect(value).not.toContain('horse');
    expect(again).not.toBe(value);
    expect(again.split('.')[1]).toBe(parts[1]);
  });

  it('creates one data key per scope, wrapped by the active KEK, never in clear', async () => {
    const { ring, store } = await sealed();
    await ring.seal(store, REF, 'second', randomUUID);
    await ring.seal(store, { ...REF, scope: ORG_B }, 'other org', randomUUID);
    expect(store.keys.get(ORG_A)).toHaveLength(1);
    expect(store.keys.get(ORG_B)).toHaveLength(1);
    const [a, b] = [store.keys.get(ORG_A)?.[0], store.keys.get(ORG_B)?.[0]];
    expect(a?.kekId).toBe('k1');
    expect(a?.id).not.toBe(b?.id);
    expect(a?.wrapped.split('.')).toHaveLength(3);
    expect(Buffer.from(a?.wrapped.split('.')[1] ?? '', 'base64url')).toHaveLength(32);
  });

  it.each([[0, 'iv'], [1, 'ciphertext'], [2, 'tag']] as const)('rejects a tampered part %i (%s) as an integrity failure', async (index, _part) => {
    const { ring, store, value } = await sealed();
    expect(await openError(ring.open(store, REF, tamper(value, index)))).toBe('invariant');
  });

  it.each([
    ['empty', ''],
    ['wrong version', 'v2.x.y.z.w'],
    ['no key id', 'v1'],
    ['missing tag', 'v1.KEY.aaaaaaaaaaaaaaaa.bbbb'],
    ['short tag', 'v1.KEY.aaaaaaaaaaaaaaaa.bbbb.cccc'],
  ])('rejects a malformed value (%s) as an integrity failure', async (_name, bad) => {
    const { ring, store } = await sealed();
    const keyId = store.keys.get(ORG_A)?.[0]?.id ?? '';
    expect(await openError(ring.open(store, REF, bad.replace('KEY', keyId)))).toBe('invariant');
  });

  it.each([
    ['another org', { scope: ORG_B }],
    ['another table', { table: 'webhook_endpoints' }],
    ['another column', { column: 'token' }],
    ['another row', { row: 'row-2' }],
    ['a shifted separator', { table: 'integration_credentials|secret', column: '' }],
  ])('does not open when moved to %s (AAD)', async (_name, change) => {
    const { ring, store, value } = await sealed();
    // Give every scope the same data key so that only the AAD can tell the places apart.
    const w = store.keys.get(ORG_A)?.[0];
    if (w) store.keys.set(ORG_B, [w]);
    expect(await openError(ring.open(store, { ...REF, ...change }, value))).toBe('invariant');
  });

  it('does not unwrap a data key copied to another scope (wrapping AAD)', async () => {
    const { store, value } = await sealed();
    const w = store.keys.get(ORG_A)?.[0];
    if (w) store.keys.set(ORG_B, [w]);
    const moved = { ...REF, scope: ORG_B };
    expect(await openError(new Keyring([K1]).open(store, moved, value))).toBe('invariant');
  });

  it('rejects an unknown data key id as an integrity failure, and an unknown KEK as an invariant breach', async () => {
    const { ring, store, value } = await sealed();
    const [v, , ...rest] = value.split('.');
    expect(await openError(ring.open(store, REF, [v, randomUUID(), ...rest].join('.')))).toBe('invariant');
    expect(await openError(ring.open(new MemoryStore(), REF, value))).toBe('invariant');
    expect(await openError(new Keyring([K2]).open(store, REF, value))).toBe('invariant');
  });

  it('rejects a tampered wrapped data key', async () => {
    const { store, value } = await sealed();
    const w = store.keys.get(ORG_A)?.[0];
    if (!w) throw new Error('no key');
    const [iv, ct, tag] = w.wrapped.split('.');
    const bytes = Buffer.from(ct ?? '', 'base64url');
    bytes[5] = (bytes[5] ?? 0) ^ 0x80;
    store.replace(ORG_A, { ...w, wrapped: [iv, bytes.toString('base64url'), tag].join('.') });
    expect(await openError(new Keyring([K1]).open(store, REF, value))).toBe('invariant');
  });

  it('refuses a keyring without KEKs, with a KEK not of 256 bits, or with a KEK id twice', () => {
    expect(() => new Keyring([])).toThrow(InvariantError);
    expect(() => new Keyring([{ id: 'short', key: Buffer.alloc(16, 1) }])).toThrow(InvariantError);
    expect(() => new Keyring([K1, { id: 'k1', key: Buffer.alloc(32, 9) }])).toThrow(InvariantError);
  });
});

describe('KEK rotation', () => {
  it('re-wraps a data key under the new active KEK; old and new ciphertexts keep opening', async () => {
    const { store, value: old } = await sealed('before rotation', new Keyring([K1]));
    const w = store.keys.get(ORG_A)?.[0];
    if (!w) throw new Error('no key');

    const both = new Keyring([K2, K1]);
    expect(both.activeKekId).toBe('k2');
    // Before the re-wrap is stored, a keyring listing both KEKs opens the old ciphertext.
    expect(await both.open(store, REF, old)).toBe('before rotation');

    const rewrapped = both.rewrap(ORG_A, w);
    expect(rewrapped).toMatchObject({ id: w.id, kekId: 'k2' });
    expect(rewrapped.wrapped).not.toBe(w.wrapped);
    store.replace(ORG_A, rewrapped);

    const fresh = await both.seal(store, REF, 'after rotation', randomUUID);
    expect(fresh.split('.')[1]).toBe(w.id);
    // Once every data key is re-wrapped, the old KEK can be retired.
    const onlyNew = new Keyring([K2]);
    expect(await onlyNew.open(store, REF, old)).toBe('before rotation');
    expect(await onlyNew.open(store, REF, fresh)).toBe('after rotation');
    expect(await openError(new Keyring([K1]).open(store, REF, old))).toBe('invariant');
  });

  it('wraps the data keys of new scopes with the new active KEK', async () => {
    const store = new MemoryStore();
    await new Keyring([K2, K1]).seal(store, REF, 'x', randomUUID);
    expect(store.keys.get(ORG_A)?.[0]?.kekId).toBe('k2');
  });

  it('cannot re-wrap without the KEK that wrapped the key', async () => {
    const { store } = await sealed();
    const w = store.keys.get(ORG_A)?.[0];
    if (!w) throw new Error('no key');
    expect(() => new Keyring([K2]).rewrap(ORG_A, w)).toThrow(InvariantError);
    expect(() => new Keyring([K2, K1]).rewrap(ORG_B, w)).toThrow(SealedValueError);
  });
});

describe('blind index', () => {
  it('is stable for a value, differs between values and stores, survives a KEK rotation, and holds nothing of the value', async () => {
    const store = new MemoryStore();
    const ring = new Keyring([K1]);
    const a = await ring.blindIndex(store, 'blind-index', 'email:alice@example.com', randomUUID);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(await ring.blindIndex(store, 'blind-index', 'email:alice@example.com', randomUUID)).toBe(a);
    expect(await ring.blindIndex(store, 'blind-index', 'email:alice@example.org', randomUUID)).not.toBe(a);
    expect(store.keys.get('blind-index')).toHaveLength(1);
    // Another deployment (another key) indexes the same address differently.
    expect(await new Keyring([K1]).blindIndex(new MemoryStore(), 'blind-index', 'email:alice@example.com', randomUUID)).not.toBe(a);
    // The key is rewrapped by a KEK rotation, not replaced: the index does not move.
    const w = store.keys.get('blind-index')?.[0];
    if (!w) throw new Error('no key');
    const rotated = new Keyring([K2, K1]);
    store.replace('blind-index', rotated.rewrap('blind-index', w));
    expect(await new Keyring([K2]).blindIndex(store, 'blind-index', 'email:alice@example.com', randomUUID)).toBe(a);
  });
});

describe('parseKeks', () => {
  const b64 = (fill: number, n = 32) => Buffer.alloc(n, fill).toString('base64');

  it('reads id:base64 entries, the first being active', () => {
    const keks = parseKeks(` new:${b64(2)} , old_1:${b64(1)}`);
    expect(keks.map((k) => k.id)).toEqual(['new', 'old_1']);
    expect(keks[0]?.key.equals(Buffer.alloc(32, 2))).toBe(true);
    expect(new Keyring(keks).activeKekId).toBe('new');
  });

  it.each([
    ['no colon', b64(1)],
    ['empty id', `:${b64(1)}`],
    ['bad id characters', `k 1:${b64(1)}`],
    ['id too long', `${'k'.repeat(33)}:${b64(1)}`],
    ['short key', `k1:${b64(1, 16)}`],
    ['long key', `k1:${b64(1, 33)}`],
    ['empty key', 'k1:'],
    ['duplicate id', `k1:${b64(1)},k1:${b64(2)}`],
  ])('rejects %s', (_name, spec) => {
    expect(() => parseKeks(spec)).toThrow(InvariantError);
  });

  it('returns nothing for an empty spec (config refuses that)', () => {
    expect(parseKeks(' , ')).toEqual([]);
  });
});
