import { readFileSync, statSync } from 'node:fs';

type Source = Record<string, string | undefined>;

/** Keys, passwords and URLs are short; a mounted secret bundle of PEMs fits too. */
export const MAX_SECRET_FILE_BYTES = 64 * 1024;

/**
 * The settings that carry a secret, each of which may instead come from the file named by
 * `NAME_FILE` (a mounted Docker or Kubernetes secret). SOCIAL_* are all accepted, as they always
 * were: a provider's client secret has a name only known at run time.
 */
export const SECRET_SETTINGS: readonly string[] = [
  'PALISADE_KEKS',
  'PALISADE_SESSION_SECRET',
  'PALISADE_PKCS11_PIN',
  'DATABASE_URL',
  'DATABASE_RUNTIME_URL',
  'PALISADE_DB_RUNTIME_PASSWORD',
  'REDIS_URL',
  'PALISADE_METRICS_TOKEN',
  'SMTP_URL',
  'PALISADE_S3_SECRET_ACCESS_KEY',
];

const acceptsFile = (name: string): boolean => SECRET_SETTINGS.includes(name) || name.startsWith('SOCIAL_');

const REASONS: Record<string, string> = {
  ENOENT: 'no such file',
  EACCES: 'permission denied',
  EPERM: 'permission denied',
  EISDIR: 'it is a directory',
};

/**
 * The one `_FILE` mechanism: returns the environment with every `NAME_FILE` of a secret setting
 * replaced by `NAME` holding the file's content (trailing newlines trimmed: `echo` and editors add
 * one). A problem names the variable and the path, never the content. Setting both is refused:
 * which one wins would be a guess.
 */
export function resolveFileSettings(source: Source, problems: string[]): Source {
  const out: Source = { ...source };
  for (const [key, path] of Object.entries(source)) {
    if (!key.endsWith('_FILE') || path === undefined) continue;
    const name = key.slice(0, -'_FILE'.length);
    if (!acceptsFile(name)) continue;
    delete out[key];
    if (source[name] !== undefined && source[name] !== '') {
      problems.push(`${name} and ${key} are both set: keep one`);
      continue;
    }
    if (path.trim() === '') {
      problems.push(`${key} is empty: name the file that holds ${name}`);
      delete out[name];
      continue;
    }
    try {
      // A regular file of secret size only: a FIFO or /dev/zero named by mistake (or on
      // purpose) would hang the start or fill its memory before anything could refuse it.
      const st = statSync(path);
      if (!st.isFile()) {
        problems.push(`${key}: ${path} is not a regular file`);
        delete out[name];
        continue;
      }
      if (st.size > MAX_SECRET_FILE_BYTES) {
        problems.push(`${key}: ${path} is larger than ${MAX_SECRET_FILE_BYTES / 1024} KiB, too large for a secret`);
        delete out[name];
        continue;
      }
      const content = readFileSync(path, 'utf8').replace(/[\r\n]+$/, '');
      if (content === '') problems.push(`${key}: ${path} is empty`);
      out[name] = content;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      problems.push(`${key} cannot be read: ${path} (${REASONS[code] ?? (code || 'unreadable')})`);
      delete out[name];
    }
  }
  return out;
}
