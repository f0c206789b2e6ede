import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKek, initToken, readKeyValue, softhsmMissing, startSoftHsm, SOFTHSM_MODULE, type SoftHsm } from '../../test/support/softhsm.js';
import { Keyring, SealedValueError, type DataKeyStore, type FieldRef, type WrappedKey } from './keyring.js';
import { memoryKekProvider } from './kek-provider.js';
import { KeyProviderError, openPkcs11Provider, type Pkcs11Settings } from './pkcs11.js';

/**
 * The PKCS#11 KEK provider against a real SoftHSM2 token. CI installs softhsm2 (.ci/run), where
 * these tests must run; a machine without it skips them, saying why.
 */
const missing = softhsmMissing();
if (missing) {
  // Loud on purpose: a skipped HSM suite must not pass for a green one unnoticed.
  process.stderr.write(`\n*** SKIPPING the PKCS#11 (SoftHSM2) tests: ${missing} ***\n\n`);
}

const TOKEN = 'palisade-test';
const PIN = '4711';
const ENV_KEK = Buffer.alloc(32, 7);

function memoryStore(): DataKeyStore {
  const keys = new Map<string, WrappedKey[]>();
  return {
    active: async (scope) => keys.get(scope)?.at(-1) ?? null,
    byId: async (scope, id) => keys.get(scope)?.find((k) => k.id === id) ?? null,
    insert: async (scope, k) => void keys.set(scope, [...(keys.get(scope) ?? []), k]),
  };
}

const ref: FieldRef = { scope: '7d0f5d36-53b1-4a4c-9a53-2b4d2f1f0a11', table: 'assets', column: 'secret', row: 'r1' };
let n = 0;
const newId = () => `00000000-0000-4000-8000-${String(++n).padStart(12, '0')}`;

describe.skipIf(missing !== null)('PKCS#11 KEK provider on a SoftHSM2 token', () => {
  let hsm: SoftHsm;
  const settings = (over: Partial<Pkcs11Settings> = {}): Pkcs11Settings => ({ module: SOFTHSM_MODULE, token: TOKEN, pin: PIN, keyLabels: ['kek-b', 'kek-a'], ...over });

  beforeAll(() => {
    hsm = startSoftHsm();
    // Every token before the library first initialises in this process (SoftHSM reads its slots then).
    initToken(TOKEN, PIN);
    createKek(TOKEN, PIN, 'kek-a');
    createKek(TOKEN, PIN, 'kek-b');
    createKek(TOKEN, PIN, 'moved', { value: ENV_KEK });
    createKek(TOKEN, PIN, 'leaky', { extractable: true });
    createKek(TOKEN, PIN, 'aes128', { valueLen: 16 });
  });
  afterAll(() => hsm?.close());

  it('seals and opens through a KEK that stays in the token; a cold keyring opens from the wrapped key alone', async () => {
    const store = memoryStore();
    const keyring = new Keyring(openPkcs11Provider(settings()));
    expect(keyring.kekIds).toEqual(['kek-b', 'kek-a']);
    const sealed = await keyring.seal(store, ref, 'a secret in the HSM era', newId);
    const stored = await store.active(ref.scope);
    expect(stored?.kekId).toBe('kek-b');
    const cold = new Keyring(openPkcs11Provider(settings()));
    expect(await cold.open(store, ref, sealed)).toBe('a secret in the HSM era');
    // The wrap is bound to its scope and id inside the token too: moved to another scope, it does not open.
    expect(() => cold.assertUnwraps('another-scope', stored as WrappedKey)).toThrow(SealedValueError);
    keyring.close();
    cold.close();
  });

  it('never lets the KEK out: reading CKA_VALUE fails; an extractable or 128-bit key is refused as a KEK', () => {
    expect(readKeyValue(TOKEN, PIN, 'kek-a')).toEqual({ code: 'CKR_ATTRIBUTE_SENSITIVE' });
    expect(readKeyValue(TOKEN, PIN, 'kek-a.mac')).toEqual({ code: 'CKR_ATTRIBUTE_SENSITIVE' });
    expect(() => openPkcs11Provider(settings({ keyLabels: ['leaky'] }))).toThrow(
      'PKCS#11 key "leaky" in token "palisade-test" can leave the token: create it with CKA_EXTRACTABLE=false and CKA_SENSITIVE=true');
    expect(() => openPkcs11Provider(settings({ keyLabels: ['aes128'] }))).toThrow('PKCS#11 key "aes128" in token "palisade-test" is not 256 bits (CKA_VALUE_LEN must be 32)');
  });

  it('rotates from one token KEK to another: rewrap inside the token, then the old label is not needed', async () => {
    const store = memoryStore();
    const old = new Keyring(openPkcs11Provider(settings({ keyLabels: ['kek-a'] })));
    const sealed = await old.seal(store, ref, 'rotate me', newId);
    const w = (await store.active(ref.scope)) as WrappedKey;
    const both = new Keyring(openPkcs11Provider(settings()));
    const rewrapped = both.rewrap(ref.scope, w);
    expect(rewrapped).toMatchObject({ id: w.id, kekId: 'kek-b' });
    const onlyNew = new Keyring(openPkcs11Provider(settings({ keyLabels: ['kek-b'] })));
    const after: DataKeyStore = { ...store, byId: async () => rewrapped };
    expect(await onlyNew.open(after, ref, sealed)).toBe('rotate me');
    for (const k of [old, both, onlyNew]) k.close();
  });

  it('a KEK moved from PALISADE_KEKS into the token opens what it wrapped, and its chain MACs are unchanged', async () => {
    const env = new Keyring([{ id: 'moved', key: ENV_KEK }]);
    const store = memoryStore();
    const sealed = await env.seal(store, ref, 'sealed before the HSM', newId);
    const token = new Keyring(openPkcs11Provider(settings({ keyLabels: ['moved'] })));
    expect(await token.open(store, ref, sealed)).toBe('sealed before the HSM');
    // Audit chain links, heads and checkpoints made with the env KEK verify with the token's.
    for (const purpose of ['audit-chain', 'audit-head', 'audit-checkpoint']) {
      expect(token.mac(purpose, 'moved', 'event 1')).toBe(env.mac(purpose, 'moved', 'event 1'));
    }
    const provider = openPkcs11Provider(settings({ keyLabels: ['moved'] }));
    expect(provider.macKey('moved', 'x')).toEqual(memoryKekProvider([{ id: 'moved', key: ENV_KEK }]).macKey('moved', 'x'));
    provider.close();
    token.close();
  });

  it('a wrong PIN, a missing token, a missing key label or a missing module is a clear error that never shows the PIN', () => {
    const message = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        expect(err).toBeInstanceOf(KeyProviderError);
        return (err as Error).message;
      }
      throw new Error('opened');
    };
    // The token checks it (no session open), and so does the provider while one is (login is per application).
    const wrong = message(() => openPkcs11Provider(settings({ pin: '9999-canary' })));
    expect(wrong).toBe('PALISADE_PKCS11_PIN was refused by token "palisade-test" (CKR_PIN_INCORRECT)');
    const open = openPkcs11Provider(settings());
    expect(message(() => openPkcs11Provider(settings({ pin: '9999-canary' })))).toBe(wrong);
    open.close();
    expect(message(() => openPkcs11Provider(settings({ token: 'no-such-token' })))).toBe(
      'PKCS#11 token "no-such-token" (PALISADE_PKCS11_TOKEN) is not in /usr/lib/softhsm/libsofthsm2.so; tokens present: "palisade-test"');
    expect(message(() => openPkcs11Provider(settings({ keyLabels: ['kek-b', 'kek-gone'] })))).toBe('PKCS#11 token "palisade-test" has no AES key labelled "kek-gone"');
    expect(message(() => openPkcs11Provider(settings({ module: '/nonexistent/libpkcs11.so' })))).toBe(
      'PALISADE_PKCS11_MODULE /nonexistent/libpkcs11.so cannot be loaded (is the PKCS#11 library installed, e.g. Debian softhsm2?)');
  });
});
