import { memoryKekProvider, type Kek, type KekProviderSettings } from './kek-provider.js';
import { Keyring } from './keyring.js';
import { openPkcs11Provider } from './pkcs11.js';

/**
 * The keyring of a configuration: KEKs held in process (PALISADE_KEKS, PALISADE_KEK_DIR), or a
 * session on the PKCS#11 token that holds them. Throws KeyProviderError, naming what is missing
 * (module, token, PIN refused, key label), when the token cannot be used.
 */
export function openKeyring(config: { keks: readonly Kek[]; kekProvider: KekProviderSettings }): Keyring {
  if (config.kekProvider.kind === 'pkcs11') return new Keyring(openPkcs11Provider(config.kekProvider));
  return new Keyring(memoryKekProvider(config.keks));
}
