import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ConfigError } from './errors.js';
import { DEFAULT_PKCS11_MODULE, KEK_ID, parseKekValue, type Kek, type KekProviderSettings } from '../crypto/index.js';

type Source = Record<string, string | undefined>;

const PROVIDERS = ['env', 'file', 'pkcs11'] as const;

/**
 * PALISADE_KEK_PROVIDER and its settings. `env` (default): PALISADE_KEKS (or its _FILE).
 * `file`: a directory of one file per KEK (PALISADE_KEK_DIR, e.g. a mounted Kubernetes secret).
 * `pkcs11`: AES keys in a token, found by label (PALISADE_PKCS11_KEYS, the first is active).
 * Messages name settings, never a PIN or a key.
 */
export function kekSettings(source: Source, refuse: (message: string) => void): KekProviderSettings {
  const kind = source.PALISADE_KEK_PROVIDER?.trim() || 'env';
  if (!(PROVIDERS as readonly string[]).includes(kind)) {
    refuse(`PALISADE_KEK_PROVIDER must be one of ${PROVIDERS.join(', ')}`);
    return { kind: 'env' };
  }
  const stray = (names: string[]): void => {
    for (const n of names) if (source[n]) refuse(`${n} is a setting of another PALISADE_KEK_PROVIDER than ${kind}: remove it`);
  };
  if (kind === 'file') {
    stray(['PALISADE_KEKS', 'PALISADE_PKCS11_TOKEN', 'PALISADE_PKCS11_KEYS', 'PALISADE_PKCS11_PIN']);
    const dir = source.PALISADE_KEK_DIR?.trim();
    if (!dir) {
      refuse('PALISADE_KEK_PROVIDER=file needs PALISADE_KEK_DIR (a directory with one file per KEK, named by its id)');
      return { kind: 'file', dir: '' };
    }
    return { kind: 'file', dir: resolve(dir) };
  }
  if (kind === 'pkcs11') {
    stray(['PALISADE_KEK_DIR', 'PALISADE_KEK_ACTIVE']);
    const token = source.PALISADE_PKCS11_TOKEN?.trim() ?? '';
    const pin = source.PALISADE_PKCS11_PIN ?? '';
    const keyLabels = (source.PALISADE_PKCS11_KEYS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
    if (!token) refuse('PALISADE_KEK_PROVIDER=pkcs11 needs PALISADE_PKCS11_TOKEN (the token label)');
    if (!pin) refuse('PALISADE_KEK_PROVIDER=pkcs11 needs PALISADE_PKCS11_PIN or PALISADE_PKCS11_PIN_FILE (the user PIN)');
    if (keyLabels.length === 0) refuse('PALISADE_KEK_PROVIDER=pkcs11 needs PALISADE_PKCS11_KEYS (key labels, the active one first)');
    // Labels are the KEK ids stored beside every wrapped key and audit event.
    for (const l of keyLabels) if (!KEK_ID.test(l)) refuse(`PALISADE_PKCS11_KEYS: "${l.slice(0, 40)}" is not a KEK id (1-32 of A-Z a-z 0-9 _ -)`);
    if (new Set(keyLabels).size !== keyLabels.length) refuse('PALISADE_PKCS11_KEYS lists a label twice');
    const module = source.PALISADE_PKCS11_MODULE?.trim() || DEFAULT_PKCS11_MODULE;
    return { kind: 'pkcs11', module, token, pin, keyLabels: Object.freeze(keyLabels) };
  }
  stray(['PALISADE_KEK_DIR', 'PALISADE_KEK_ACTIVE', 'PALISADE_PKCS11_TOKEN', 'PALISADE_PKCS11_KEYS', 'PALISADE_PKCS11_PIN']);
  return { kind: 'env' };
}

/**
 * The `file` provider's directory: each regular file `<id>` holds one KEK in base64 (32 bytes).
 * Names starting with a dot are skipped: Kubernetes mounts a secret with `..data` links beside
 * its keys. The active KEK is PALISADE_KEK_ACTIVE (needed once there are two); the others follow
 * in name order, for unwrapping only.
 */
export function readKekDir(dir: string, active: string | undefined): Kek[] {
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true })
      .filter((d) => !d.name.startsWith('.') && (d.isFile() || d.isSymbolicLink()))
      .map((d) => d.name)
      .sort();
  } catch (err) {
    throw new ConfigError(`PALISADE_KEK_DIR cannot be read: ${dir} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  if (names.length === 0) throw new ConfigError(`PALISADE_KEK_DIR ${dir} holds no KEK file`);
  const keks = names.map((id): Kek => {
    if (!KEK_ID.test(id)) throw new ConfigError(`PALISADE_KEK_DIR: the file name "${id.slice(0, 40)}" is not a KEK id (1-32 of A-Z a-z 0-9 _ -)`);
    let text: string;
    try {
      text = readFileSync(join(dir, id), 'utf8');
    } catch (err) {
      throw new ConfigError(`PALISADE_KEK_DIR: KEK file ${id} cannot be read (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`);
    }
    const key = parseKekValue(text.trim());
    if (!key) throw new ConfigError(`PALISADE_KEK_DIR: KEK file ${id} must hold 32 bytes in base64`);
    return { id, key };
  });
  const activeId = active?.trim() || (keks.length === 1 ? keks[0]?.id : undefined);
  if (!activeId) throw new ConfigError(`PALISADE_KEK_DIR holds ${keks.length} KEKs: name the active one with PALISADE_KEK_ACTIVE`);
  const first = keks.find((k) => k.id === activeId);
  if (!first) throw new ConfigError(`PALISADE_KEK_ACTIVE names ${activeId.slice(0, 40)}, which PALISADE_KEK_DIR does not hold`);
  return [first, ...keks.filter((k) => k !== first)];
}
