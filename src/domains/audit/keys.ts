import type { Keyring } from '../../crypto/index.js';
import type { ChainKeys } from './chain.js';

/** Chain keys derived from the keyring's KEKs: new events, heads and checkpoints use the active KEK, old ones keep theirs. */
export function chainKeysFrom(keyring: Keyring): ChainKeys {
  return {
    activeKeyId: keyring.activeKekId,
    mac: (purpose, keyId, data) => keyring.mac(purpose, keyId, data),
  };
}
